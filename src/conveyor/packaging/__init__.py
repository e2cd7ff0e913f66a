"""Packaging: a registered model version as an OCI image (build context, builders, push, smoke test)."""
