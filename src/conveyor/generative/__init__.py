"""Generative models on Conveyor's path: a GGUF file plus a small generation config, registered like any
version and served OpenAI-compatible (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``).

``gguf_facts`` reads what a GGUF file says of itself, ``config`` is the generation config a version
carries (``generation.yaml``), ``registration`` turns a GGUF file (or a new prompt for an existing
version) into a version, ``engine`` runs llama.cpp in parallel slots, ``protocol`` is the OpenAI wire
format and its errors, ``app`` the ASGI routes, ``server`` the process.  The engine is the
``generative`` extra, imported only where a model is loaded.
"""
