"""Faster variants of a registered model, shipped through the same safe path.

``variants`` makes candidates (dynamic int8 quantization, offline graph optimization),
``agreement`` runs the original and a candidate on an evaluation set and compares their
answers, ``speed`` measures both in-process on this machine, and ``run`` picks the fastest
candidate that passes the agreement gate and registers it with its lineage.  The rollout's
mirrored-traffic agreement is then the live gate.
"""

DEFAULT_MIN_AGREEMENT = 0.99  # the share of inputs a variant must answer as the original does
DEFAULT_METHODS = (
    "fused-int8-smooth",
    "int8-smooth",
    "int8",
    "fused",
)  # each is made, gated, measured; the fastest that agrees wins
