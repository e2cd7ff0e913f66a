"""Backend URLs as shown to people and clients: without the ``user:password@`` a URL may carry.

A backend's URL may hold credentials for the backend; the router keeps them to call it, but its
answers and the dashboard's pages never repeat them (``http://user:pw@h:1/`` shows as ``http://h:1/``).
"""

from __future__ import annotations

import re

# scheme://, then the authority's user information up to its last "@" (greedy, never past the authority)
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")


def without_credentials(url: str) -> str:
    """``url`` with any user information removed; anything else unchanged."""
    return _USERINFO.sub(r"\1", url, count=1)


def has_credentials(url: str) -> bool:
    return _USERINFO.match(url) is not None
