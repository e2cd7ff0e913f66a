"""Freeze the loaded heap once the model is warm, so the garbage collector stops walking it.

A server process holds hundreds of thousands of long-lived objects (onnxruntime, numpy, the
tokenizer, Starlette, pydantic's schemas) that never become garbage.  CPython's oldest-generation
collection walks every one of them, and it runs whenever the objects promoted since the last one
reach a quarter of that heap: under load, requests in flight survive the young collections, so a
full collection came about once a second at 4,000 requests/s, and it stopped the event loop for
30-50 ms on this machine (200 ms and more under load): every request in flight waited it out.
That was the v2 route's p99 at c = 32 (its requests allocate more than ``/predict``'s, so it
reached the threshold several times as often); docs/benchmarks.md has the numbers.

``gc.freeze()`` moves every object alive at that moment into a permanent generation that
collections skip; what requests allocate afterwards is collected as before.  The server calls
:func:`freeze_loaded_heap` once, after loading and warming the model (never in a test process,
whose heap is not a server's).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_loaded_heap() -> None:
    """Collect what loading left as garbage, then exempt everything still alive from later collections."""
    gc.collect()
    gc.freeze()
    log.debug("froze %d objects out of the garbage collector's reach", gc.get_freeze_count())
