"""Rollout analysis, one concept in one package.

* :mod:`.metric`: what an analysis metric is (the interface, its verdict, the traffic window);
* :mod:`.metrics`: the metrics, one module each (and plugins' ``conveyor.metrics`` entry points);
* :mod:`.thresholds`: every metric's settings as one mapping, checked when a rollout uses it;
* :mod:`.run`: one analysis run, where every applicable metric measures the window.
"""
