"""The router: the data plane of rollouts, a reverse proxy in front of model-server backends.

It splits live traffic by weight, pins and sticks clients, mirrors a share to the new version
and compares the answers, ejects unhealthy backends and counts everything per backend. It knows
nothing of rollouts: the controller (``conveyor.rollout``) changes its route table over the admin
API (``/_conveyor/``) and reads its counters; ``tests/test_architecture.py`` keeps it that way.
"""
