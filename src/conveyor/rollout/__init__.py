"""Controlled rollouts: the router (data plane), the controller and its analysis."""
