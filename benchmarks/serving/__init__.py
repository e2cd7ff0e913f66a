"""Serving benchmark: in-process limit vs the classic Flask app vs ``conveyor serve``."""
