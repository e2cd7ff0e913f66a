"""Drift on fields the payload log keeps only as hashes (``serve --log-hash FIELD``).

The log holds ``sha256:...`` where the reference profile holds values, so compared as they are
every window would differ completely (a permanent false alarm).  A hashed *category* keeps its
frequencies: equal values hash alike.  So its reference categories are hashed the same way
(``conveyor.serving.payload_hash``: the same function, the key from the same
``$CONVEYOR_PAYLOAD_HASH_KEY``) and the window is judged against those: same-distribution traffic
stays calm and a real shift of the column is still seen, without the log ever holding a value.

What a hash cannot keep is left out of the judgement, each with a note in the report: a hashed
number (no order, no scale), a hashed text (no length, words or tokens), and a hashed category
whose logged hashes match none of the reference's (the log was hashed with another key than the
one this process holds, so no comparison would mean anything).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from conveyor.monitoring.profile import OTHER, Profile
from conveyor.serving.payload_hash import HASH_KEY_ENV, hash_value, is_hashed
from conveyor.serving.payload_record import RequestRecord


def hashed_fields(records: Iterable[RequestRecord]) -> dict[str, set[str]]:
    """The input fields whose logged values are all hashes, with the hashes seen (``text``: a text model's input)."""
    every: dict[str, bool] = {}
    seen: dict[str, set[str]] = {}
    for record in records:
        for item in record.inputs or []:
            pairs = item.items() if isinstance(item, dict) else [("text", item)] if isinstance(item, str) else []
            for field, value in pairs:
                if value is None:
                    continue
                every[field] = every.get(field, True) and is_hashed(value)
                seen.setdefault(field, set()).add(str(value))
    return {field: seen[field] for field, hashed in every.items() if hashed}


def as_logged(profile: Profile, fields: Mapping[str, set[str] | None], key: bytes) -> tuple[Profile, list[str]]:
    """``profile`` as the log sees ``fields`` (hashed with ``key``), and a note per field on what was done.

    ``fields`` maps each hashed field to the hashes the log holds for it, or None where the caller
    hashed them itself with ``key`` (a server judging its own log)."""
    columns = dict(profile.columns)
    notes = []
    for field in sorted(fields):
        if field == "text":
            dropped = [name for name in columns if name.startswith("text.")]
            for name in dropped:
                del columns[name]
            if dropped:
                notes.append("text: logged as a hash (--log-hash text); a hash has no length or words: not judged")
            continue
        name = f"feature.{field}"
        column = columns.get(name)
        if column is None:
            continue
        if column.kind != "categorical":
            del columns[name]
            notes.append(f"{name}: a number logged as a hash has no order or scale: not judged")
            continue
        hashed = {c if c == OTHER else hash_value(c, key): share for c, share in column.categories.items()}
        logged = fields[field]
        if logged is not None and not logged & set(hashed):
            del columns[name]
            notes.append(
                f"{name}: its logged hashes match none of the reference's categories hashed with this process's "
                f"${HASH_KEY_ENV}: the log was hashed with another key; not judged"
            )
            continue
        columns[name] = column.model_copy(update={"categories": hashed})
        notes.append(f"{name}: logged as a hash; judged against the reference's categories hashed the same way")
    return profile.model_copy(update={"columns": columns}), notes
