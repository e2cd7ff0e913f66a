"""Pipelines: declared steps (conveyor.yaml) run locally as a DAG, and generated as CI workflows."""
