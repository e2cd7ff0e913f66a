"""The model registry: versions, aliases and files with checksums.

Metadata lives in SQL (SQLite by default, PostgreSQL by URL), files in a
content-addressed blob store (a local directory by default, S3-compatible by
``s3://bucket/prefix``).  ``open_registry()`` picks the backend from the
environment; a remote registry (``CONVEYOR_REGISTRY=https://...``) offers the
same methods over HTTP.
"""
