"""Bridges to the engines a team already runs: MLflow's model registry in (``mlflow_*``)."""
