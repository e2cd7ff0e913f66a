"""Example projects delivered with Conveyor."""
