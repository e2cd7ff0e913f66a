"""Signing keys as PEM files (or a PEM in an environment secret), and the ids that name them.

One ECDSA P-256 pair signs everything: OpenSSF model signing accepts only NIST curves, and the
DSSE envelopes of provenance and image signatures accept it as well (and ed25519 keys, which
``conveyor keys generate --type ed25519`` makes, for those two links).  A key's id is the sha256
of its public PEM, the same "hint" model-signing writes into its signatures, so one id names a
key in every link and in every message.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.errors import InvalidInput, NotFound
from conveyor.extras import needs

# what every module of the supply chain names when its extra is missing
SUPPLY_CHAIN = "the supply chain (keys, signatures, SBOMs, provenance)"

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

KEY_ENV = "CONVEYOR_SIGNING_KEY"  # a private key's PEM itself (a CI secret) when no --key file is given
TRUSTED_ENV = "CONVEYOR_TRUSTED_KEYS"  # public key files, separated like PATH
KEY_TYPES = ("ecdsa-p256", "ed25519")


@dataclass(frozen=True)
class SigningKey:
    """A private key and where it came from (a file, or the environment)."""

    private: PrivateKeyTypes
    pem: bytes
    source: str

    @property
    def public(self) -> PublicKeyTypes:
        return self.private.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public)


@dataclass(frozen=True)
class TrustedKey:
    public: PublicKeyTypes
    source: str

    @property
    def key_id(self) -> str:
        return key_id(self.public)


def public_pem(public: PublicKeyTypes) -> bytes:
    with needs("supply-chain", SUPPLY_CHAIN):
        from cryptography.hazmat.primitives import serialization

    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(public: PublicKeyTypes) -> str:
    return hashlib.sha256(public_pem(public)).hexdigest()


def short(key: str) -> str:
    return key[:12]


def generate(prefix: Path, key_type: str = "ecdsa-p256", force: bool = False) -> tuple[Path, Path]:
    """Write PREFIX.key (the private key, mode 0600) and PREFIX.pub; returns both paths."""
    if key_type not in KEY_TYPES:
        raise InvalidInput(f"unknown key type {key_type!r}: use one of {', '.join(KEY_TYPES)}")
    private_path, public_path = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (private_path, public_path):
        if path.exists() and not force:
            raise InvalidInput(f"{path} exists: choose another name or pass --force")
    with needs("supply-chain", SUPPLY_CHAIN):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    private: PrivateKeyTypes = (
        ec.generate_private_key(ec.SECP256R1()) if key_type == "ecdsa-p256" else ed25519.Ed25519PrivateKey.generate()
    )
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    prefix.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
    public_path.write_bytes(public_pem(private.public_key()))
    return private_path, public_path


def load_signing_key(path: Path | None) -> SigningKey:
    """The key in ``path``, else the PEM in $CONVEYOR_SIGNING_KEY."""
    if path is not None:
        if not path.is_file():
            raise NotFound(f"signing key {path} does not exist")
        pem, source = path.read_bytes(), str(path)
    elif os.environ.get(KEY_ENV):
        pem, source = os.environ[KEY_ENV].encode(), f"${KEY_ENV}"
    else:
        raise InvalidInput(f"no signing key: pass --key FILE or set {KEY_ENV} to the key's PEM")
    with needs("supply-chain", SUPPLY_CHAIN):
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{source} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey):
        raise InvalidInput(f"{source}: only ECDSA (P-256/384/521) and ed25519 keys can sign")
    return SigningKey(private, pem, source)


def optional_signing_key(path: Path | None) -> SigningKey | None:
    """The key in ``path``, else $CONVEYOR_SIGNING_KEY's, else None (an unsigned build or push)."""
    if path is None and not os.environ.get(KEY_ENV):
        return None
    return load_signing_key(path)


def require_trusted_keys(paths: list[Path] | None) -> list[TrustedKey]:
    """``load_trusted_keys``, refusing an empty answer: a check needs someone to trust."""
    keys = load_trusted_keys(paths)
    if not keys:
        raise InvalidInput("no trusted keys: pass --trusted-key KEY.pub or set CONVEYOR_TRUSTED_KEYS")
    return keys


def step_signing_key(value: object, project: Path, by_default: bool) -> SigningKey | None:
    """A pipeline step's ``with.sign``: a key file (relative to the project), true ($CONVEYOR_SIGNING_KEY,
    required), false (never); absent: $CONVEYOR_SIGNING_KEY when ``by_default`` and it is set."""
    if value is None:
        return optional_signing_key(None) if by_default else None
    if value is True:
        return load_signing_key(None)
    if value is False:
        return None
    return load_signing_key(project / str(value))


def load_trusted_keys(paths: list[Path] | None) -> list[TrustedKey]:
    """The public keys to trust: the given files, else those listed in $CONVEYOR_TRUSTED_KEYS."""
    chosen = list(paths or [])
    if not chosen and os.environ.get(TRUSTED_ENV):
        chosen = [Path(p) for p in os.environ[TRUSTED_ENV].split(os.pathsep) if p]
    keys = []
    for path in chosen:
        if not path.is_file():
            raise NotFound(f"trusted key {path} does not exist")
        with needs("supply-chain", SUPPLY_CHAIN):
            from cryptography.hazmat.primitives import serialization
        try:
            public = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as exc:
            raise InvalidInput(f"{path} is not a PEM public key: {exc}") from None
        keys.append(TrustedKey(public, str(path)))
    return keys


@contextmanager
def private_key_file(key: SigningKey) -> Iterator[Path]:
    """The key as a 0600 file for libraries that read a path (model-signing), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="conveyor-key-") as folder:
        path = Path(folder) / "signing.key"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(key.pem)
        yield path
