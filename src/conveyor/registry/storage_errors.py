"""Bad luck below the registry, as one named line: a full disk, a read-only folder, a lost database.

The operating system says ``ENOSPC`` or ``EROFS``, SQLite ``SQLITE_FULL``, PostgreSQL ``53100``
or a refused connection, botocore ``EndpointConnectionError``; a person needs to hear which disk,
folder or database it is, and that nothing was registered.  The blob stores wrap their writes in
:func:`disk_errors`, the SQL engine hands its failures to :func:`database_error` (one hook in
``schema.make_engine``, so every table's reads and writes are covered), and each operation that
changes the registry says what did not happen with :func:`outcome`.  The errors themselves
(``StorageFull``, ``StorageUnavailable``) are in ``conveyor.errors``: 507 and 503 over HTTP,
their own exit code in the CLI.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conveyor.errors import ConveyorError, StorageError, StorageFull, StorageUnavailable

FULL = {errno.ENOSPC, errno.EDQUOT}
NOT_WRITABLE = {errno.EROFS: "read-only", errno.EACCES: "permission denied", errno.EPERM: "permission denied"}
NOTHING_REGISTERED = "nothing was registered"
NOTHING_CHANGED = "nothing was changed"

# SQLite's primary result codes (sqlite3.Error.sqlite_errorname), and PostgreSQL's SQLSTATEs, that are storage
SQLITE_FULL = {"SQLITE_FULL"}
SQLITE_NOT_WRITABLE = {"SQLITE_READONLY": "read-only", "SQLITE_PERM": "permission denied"}
SQLITE_CANNOT_OPEN = {"SQLITE_CANTOPEN"}
POSTGRES_FULL = {"53100"}  # disk_full
POSTGRES_READ_ONLY = {"25006"}  # read_only_sql_transaction (a hot standby, a read-only database)


def os_error(exc: OSError, where: Path | str) -> StorageError | None:
    """The named error for an OSError met writing under ``where``; None when it is no storage trouble."""
    if exc.errno in FULL:
        return StorageFull(f"the disk holding {where} is full")
    if exc.errno in NOT_WRITABLE:
        return StorageUnavailable(f"cannot write {where} ({NOT_WRITABLE[exc.errno]})")
    return None


@contextmanager
def disk_errors(where: Path | str) -> Iterator[None]:
    """Turn a full or unwritable disk under ``where`` into its named error."""
    try:
        yield
    except OSError as exc:
        mapped = os_error(exc, where)
        if mapped is None:
            raise
        raise mapped from None


@contextmanager
def writing_file(name: str, folder: Path, what_did_not_happen: str) -> Iterator[None]:
    """Writing the file ``name`` under ``folder``: a full or read-only disk is its named error, any other
    refusal (a name too long for this filesystem) one line naming the file."""
    try:
        yield
    except OSError as exc:
        mapped = os_error(exc, folder)
        if mapped is not None:
            raise mapped.after(what_did_not_happen) from None
        shown = name if len(name) <= 80 else f"{name[:60]}... ({len(name)} characters)"
        raise ConveyorError(
            f"cannot write {shown!r} under {folder} ({exc.strerror or exc}): {what_did_not_happen}"
        ) from None


def shown_url(url: str) -> str:
    """A database URL as it may be printed: without its password."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL never reaches an engine; say it without its credentials
        return url.split("@")[-1]


def database_error(exc: BaseException, url: str, is_disconnect: bool = False) -> StorageError | None:
    """The named error for a failure of the registry's database (the DBAPI's own exception); None for others."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    where = parsed.database if parsed.get_backend_name() == "sqlite" and parsed.database else shown_url(url)
    name = getattr(exc, "sqlite_errorname", None)
    if name is not None:
        primary = "_".join(str(name).split("_")[:2])  # SQLITE_READONLY_DBMOVED -> SQLITE_READONLY
        if primary in SQLITE_FULL:
            return StorageFull(f"the disk holding {where} is full")
        if primary in SQLITE_NOT_WRITABLE:
            return StorageUnavailable(f"cannot write {where} ({SQLITE_NOT_WRITABLE[primary]})")
        if primary in SQLITE_CANNOT_OPEN:  # its folder refused the -wal and -shm files, or the file itself
            return StorageUnavailable(f"cannot write {where} ({_why_not_writable(Path(where))})")
        return None
    state = getattr(exc, "sqlstate", None)
    if state in POSTGRES_FULL:
        return StorageFull(f"the disk holding the registry database at {where} is full")
    if state in POSTGRES_READ_ONLY:
        return StorageUnavailable(f"cannot write the registry database at {where} (read-only)")
    if is_disconnect or (type(exc).__name__ == "OperationalError" and (state is None or state.startswith("08"))):
        return StorageUnavailable(f"the registry database at {where} is unreachable")
    return None


def _why_not_writable(path: Path) -> str:
    folder = path.parent
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only"
    except OSError:
        return "its folder is missing"
    return "permission denied" if not os.access(folder, os.W_OK) else "cannot open it"


@contextmanager
def outcome(what_did_not_happen: str, needed: int | None = None) -> Iterator[None]:
    """Add what the operation did not do (and the bytes it needed) to storage trouble met inside."""
    try:
        yield
    except StorageError as exc:
        raise exc.after(what_did_not_happen, needed) from None
