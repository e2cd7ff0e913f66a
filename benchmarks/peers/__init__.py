"""Other model servers beside Conveyor in ``benchmarks.serving``: MLServer, BentoML and a raw-ASGI micro-batcher.

Each peer runs in its own virtual environment (``venv.py``), made on first use from the pins in this
folder (``mlserver.txt``, ``bentoml.txt``, ``reference.txt``), so no peer's dependencies reach
Conveyor's environment or its test suite.  The code a peer runs (``minilm.py`` and the peer's own
runtime or service file) is what a user of that server writes: it imports nothing of Conveyor.
"""
