"""Registry benchmark: register and download a large file, against cp."""
