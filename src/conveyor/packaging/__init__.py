"""Packaging: a registered model version as an OCI image (build context, builders, push, smoke test)."""

# What images are built FROM unless the user says otherwise: an image any machine with a container
# engine (a GitHub-hosted runner too) can pull.  Kept here, free of imports, for the CLI's help.
DEFAULT_BASE = "docker.io/library/python:3.11-slim"
# The image label naming the version's task: `conveyor smoke` asks a text-generation image the OpenAI API.
TASK_LABEL = "ai.conveyor.model.task"
