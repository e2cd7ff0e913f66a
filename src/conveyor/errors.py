"""Conveyor's error vocabulary: what went wrong, named, for the person who caused it.

Library code raises these by name (``InvalidInput``, ``NotFound``, ``Conflict``, ...); each HTTP
edge answers ``exc.status`` with ``{"error": message}`` and the CLI turns the kind into an exit
code (``cli/output.py``).  The status each kind answers is declared once, here, on the class.
"""

from __future__ import annotations


class ConveyorError(Exception):
    """Base class for errors Conveyor reports to a user without a traceback."""


class ClientError(ConveyorError):
    """A request the client got wrong.

    Raise one of the named subclasses; ``ClientError(status, message)`` is for HTTP edges that
    pass on a status another server answered.
    """

    status: int = 400

    def __init__(self, *args: int | str) -> None:
        if len(args) == 2 and isinstance(args[0], int):
            status, message = args
            self.status = int(status)
        elif len(args) == 1:
            message = args[0]
        else:
            raise TypeError("ClientError(message) or ClientError(status, message)")
        super().__init__(str(message))
        self.message = str(message)


class BadRequest(ClientError):
    """The request cannot be read at all (not JSON, wrong encoding, wrong shape of tensor)."""

    status = 400


class Unauthorized(ClientError):
    """No valid credentials."""

    status = 401


class Forbidden(ClientError):
    """Authenticated, but not allowed: a read-scope token asking to write, a stale CSRF token."""

    status = 403


class NotFound(ClientError):
    """What was named does not exist."""

    status = 404


class MethodNotAllowed(ClientError):
    status = 405


class Conflict(ClientError):
    """The request contradicts the current state (an alias is protected, a step is not waiting)."""

    status = 409


class PayloadTooLarge(ClientError):
    status = 413


class UnsupportedMediaType(ClientError):
    status = 415


class InvalidInput(ClientError):
    """The request is readable but a value in it is wrong; the message names the field."""

    status = 422


class InvalidParameter(ClientError):
    """One named parameter of a request is wrong: missing, unknown, of the wrong type or out of range, or a
    prompt longer than the model's context.  The OpenAI-compatible API answers ``param`` and ``code``."""

    status = 400

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class NotReady(ClientError):
    status = 503

    def __init__(self, message: str = "model is not ready yet") -> None:
        super().__init__(message)


class ModelLoadError(ConveyorError):
    """The model directory, spec or ONNX file cannot be served."""


class ChainBroken(ClientError):
    """A supply-chain link does not hold: unsigned, an untrusted key, or an artifact other than the one signed.

    A refusal (403) over HTTP; the CLI exits 1, as for any failed check."""

    status = 403


class PluginFailed(ConveyorError):
    """An installed plugin that a command needs could not be imported (the CLI exits 1)."""


class PortInUse(ConveyorError):
    """The address a server was asked to listen on cannot be bound (taken, absent, privileged)."""


class MissingExtra(ConveyorError):
    """A feature needs an optional dependency that is not installed (``conveyor.extras``): the
    message names the extra and the pip command; the CLI exits 2, as for any unusable request."""


class Unreachable(ConveyorError):
    """A server we talk to (a registry, a router) could not be reached or went away mid-request."""


class StorageError(ConveyorError):
    """The registry's storage cannot take a write: bad luck on the machine, not the request.

    ``problem`` says what is wrong with which disk, folder, database or bucket; the operation that
    met it adds its ``outcome`` ("nothing was registered") and, where known, the bytes it
    ``needed``.  HTTP edges answer ``status`` with the whole line; the CLI exits with its own code.
    """

    status: int = 503

    def __init__(self, problem: str, outcome: str | None = None, needed: int | None = None) -> None:
        self.problem, self.outcome, self.needed = problem, outcome, needed
        super().__init__(self.message)

    @property
    def message(self) -> str:
        line = f"{self.problem}: {self.outcome}" if self.outcome else self.problem
        if self.needed is not None:
            needed = f"{self.needed / 1e6:.1f} MB" if self.needed >= 100_000 else f"{self.needed} bytes"
            line += f" ({needed} needed)"
        return line

    def __str__(self) -> str:
        return self.message

    def after(self, outcome: str, needed: int | None = None) -> StorageError:
        """The same error as the operation that met it tells it (an outcome already told is kept)."""
        if self.outcome is not None:
            return self
        return type(self)(self.problem, outcome, self.needed if needed is None else needed)


class StorageFull(StorageError):
    """The disk (or quota) holding the registry's files or database is full."""

    status = 507


class StorageUnavailable(StorageError):
    """The registry's storage is read-only, refuses permission, or cannot be reached (database, S3)."""

    status = 503


_BY_STATUS: dict[int, type[ClientError]] = {
    kind.status: kind
    for kind in (
        BadRequest,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        PayloadTooLarge,
        UnsupportedMediaType,
        InvalidInput,
    )
}


def error_for_status(status: int, message: str) -> ClientError:
    """The named error a server meant by answering ``status`` (for clients of Conveyor's own servers)."""
    kind = _BY_STATUS.get(status)
    if kind is not None:
        return kind(message)
    if status == 503:
        return NotReady(message)
    return ClientError(status, message)
