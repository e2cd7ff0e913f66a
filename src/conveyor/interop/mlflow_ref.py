"""Which MLflow model version a user means: ``mlflow://HOST[:PORT]/NAME/VERSION`` or ``.../NAME@ALIAS``,
or MLflow's own ``models:/NAME/VERSION`` and ``models:/NAME@ALIAS`` against ``MLFLOW_TRACKING_URI``.

``mlflow://`` speaks plain HTTP to the tracking server, ``mlflow+https://`` HTTPS; a model name
may hold slashes (the version is the last segment).  Parsing is kept apart from fetching so that
the CLI refuses a malformed reference before it imports MLflow's client.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from conveyor.errors import InvalidInput

SCHEMES = {"mlflow": "http", "mlflow+http": "http", "mlflow+https": "https"}
FORMS = "mlflow://HOST:PORT/NAME/VERSION, mlflow://HOST:PORT/NAME@ALIAS, models:/NAME/VERSION or models:/NAME@ALIAS"


@dataclass(frozen=True)
class MlflowRef:
    tracking_uri: str
    name: str
    version: str | None = None  # exactly one of version and alias
    alias: str | None = None

    @property
    def uri(self) -> str:
        """The reference as one string a user can paste back (the tracking server included)."""
        which = f"/{self.version}" if self.version is not None else f"@{self.alias}"
        scheme, _, rest = self.tracking_uri.partition("://")
        prefix = "mlflow" if scheme == "http" else "mlflow+https"
        return f"{prefix}://{rest.rstrip('/')}/{self.name}{which}"

    def at_version(self, version: str) -> MlflowRef:
        return MlflowRef(self.tracking_uri, self.name, version=version)


def _name_and_version(path: str, text: str) -> tuple[str, str | None, str | None]:
    path = unquote(path.strip("/"))
    if "@" in path:
        name, _, alias = path.rpartition("@")
        if name and re.fullmatch(r"[\w.-]+", alias):
            return name, None, alias
    else:
        name, _, version = path.rpartition("/")
        if name and version.isdigit() and int(version) > 0:
            return name, version, None
    raise InvalidInput(f"{text!r}: name a version or an alias, as {FORMS}")


def tracking_server(tracking_uri: str | None, what: str) -> str:
    """TRACKING_URI, else ``MLFLOW_TRACKING_URI``: an http(s) URL, or a refusal naming WHAT needs it."""
    server = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not server or not server.startswith(("http://", "https://")):
        raise InvalidInput(
            f"{what} needs the tracking server: set MLFLOW_TRACKING_URI=http://HOST:PORT (or --tracking-uri)"
        )
    return server.rstrip("/")


def parse_mlflow_ref(text: str, tracking_uri: str | None = None) -> MlflowRef:
    """The reference in TEXT; ``models:/`` takes TRACKING_URI, else ``MLFLOW_TRACKING_URI``."""
    if text.startswith("models:/"):
        server = tracking_server(tracking_uri, f"{text!r}: a models:/ reference")
        name, version, alias = _name_and_version(text[len("models:/") :], text)
        return MlflowRef(server, name, version, alias)
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES or not parts.netloc:
        raise InvalidInput(f"{text!r}: not an MLflow model reference; expected {FORMS}")
    name, version, alias = _name_and_version(parts.path, text)
    return MlflowRef(f"{SCHEMES[parts.scheme]}://{parts.netloc}", name, version, alias)
