"""Errors that carry an HTTP status and a message meant for the person who caused them."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class for errors Conveyor reports to a user without a traceback."""


class ClientError(ConveyorError):
    """A request the client got wrong: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class NotFound(ClientError):
    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class NotReady(ClientError):
    def __init__(self, message: str = "model is not ready yet") -> None:
        super().__init__(503, message)


class ModelLoadError(ConveyorError):
    """The model directory, spec or ONNX file cannot be served."""


class Unreachable(ConveyorError):
    """A server we talk to (a registry, a router) could not be reached or went away mid-request."""
