"""A model version's signature: OpenSSF model signing over its files, kept by the registry.

``conveyor models sign`` signs the verified local copy of a version with model-signing's
elliptic-key signer (a Sigstore bundle holding a DSSE envelope of an in-toto statement that
lists every file's sha256).  The bundle is stored as a blob of the registry and the version is
tagged ``signature=sha256:<blob>`` and ``signed-by=<key id>``, so every backend (folder, SQL,
HTTP) keeps it without a schema change and it travels with downloads as
``.conveyor-signature.json``.  A model tagged ``require-signed=true`` is a registry policy:
its versions are downloaded and served only with a valid signature (who may relax it:
``conveyor.registry.signing_policy``).  Anyone can check a
download with the OpenSSF tool as well::

    model_signing verify key DIR --signature DIR/.conveyor-signature.json --public_key KEY.pub
"""

from __future__ import annotations

import base64
import hashlib
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from conveyor.digest import sha256_file
from conveyor.errors import ChainBroken, InvalidInput
from conveyor.extras import needs
from conveyor.registry.base import COMPLETE_MARKER, Silent, download_version
from conveyor.registry.blobs import BlobCorrupt
from conveyor.registry.records import ModelVersion
from conveyor.registry.signing_policy import POLICY_TAG, requires_signature
from conveyor.supply_chain.keys import SUPPLY_CHAIN, SigningKey, TrustedKey, private_key_file, short

if TYPE_CHECKING:
    from model_signing.hashing import Config as HashingConfig

    from conveyor.registry.base import Progress
    from conveyor.registry.protocol import Registry

SIGNATURE_FILE = ".conveyor-signature.json"
SIGNATURE_TAG = "signature"
SIGNED_BY_TAG = "signed-by"
# Not part of the model: the cache's completion marker and the signature itself.
IGNORED = [COMPLETE_MARKER, SIGNATURE_FILE]


@dataclass(frozen=True)
class Signed:
    ref: str
    key_id: str
    blob: str  # sha256 of the bundle in the registry


def _hashing() -> HashingConfig:
    with needs("supply-chain", SUPPLY_CHAIN):
        from model_signing import hashing

    return hashing.Config().set_ignored_paths(paths=IGNORED)


def sign_folder(folder: Path, key: SigningKey, signature: Path) -> None:
    with needs("supply-chain", SUPPLY_CHAIN):
        import model_signing
        from cryptography.hazmat.primitives.asymmetric import ec

    if not isinstance(key.private, ec.EllipticCurvePrivateKey):
        raise InvalidInput(f"{key.source}: OpenSSF model signing needs an ECDSA key (conveyor keys generate)")
    with private_key_file(key) as path:
        config = model_signing.signing.Config().use_elliptic_key_signer(private_key=path)
        config.set_hashing_config(_hashing()).sign(folder, signature)


def sign_version(registry: Registry, ref: str, key: SigningKey) -> Signed:
    """Sign the files of ``ref`` and store the signature with the version."""
    version, folder = registry.cached(ref)
    with tempfile.TemporaryDirectory(prefix="conveyor-sign-") as tmp:
        bundle = Path(tmp) / SIGNATURE_FILE
        sign_folder(folder, key, bundle)
        digest, size = sha256_file(bundle)
        registry.store_blob(digest, bundle, size, Silent())
    registry.set_tags(version.name, version.version, {SIGNATURE_TAG: f"sha256:{digest}", SIGNED_BY_TAG: key.key_id}, [])
    return Signed(version.ref, key.key_id, digest)


def signature_bytes(registry: Registry, version: ModelVersion) -> bytes | None:
    """The version's signature bundle from the registry, checked against its digest; None if unsigned."""
    tag = version.tags.get(SIGNATURE_TAG, "")
    if not tag:
        return None
    digest = tag.removeprefix("sha256:")
    data = b"".join(registry.open_blob(digest))
    if hashlib.sha256(data).hexdigest() != digest:
        raise ChainBroken(f"the signature of {version.ref} in the registry does not match its digest {tag}")
    return data


def signed_files(bundle: bytes) -> dict[str, str]:
    """path -> sha256 as the signature lists them (read, not trusted: for messages only)."""
    try:
        envelope = json.loads(bundle)["dsseEnvelope"]
        statement = json.loads(base64.b64decode(envelope["payload"]))
        return {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    except (KeyError, ValueError, TypeError):
        return {}


def _signer_hint(bundle: bytes) -> str | None:
    try:
        return json.loads(bundle)["verificationMaterial"]["publicKey"]["hint"]
    except (KeyError, ValueError, TypeError):
        return None


def verify_folder(folder: Path, bundle: bytes, trusted: list[TrustedKey], what: str) -> str:
    """The id of the trusted key whose signature covers exactly the files of ``folder``.

    Raises ChainBroken naming the broken link: unsigned, an untrusted signer, or the files
    that were changed, added or removed since signing."""
    from conveyor.supply_chain.keys import public_pem

    with needs("supply-chain", SUPPLY_CHAIN):
        import model_signing

    hint = _signer_hint(bundle)
    candidates = [k for k in trusted if hint is None or k.key_id == hint]
    if not candidates:
        names = ", ".join(f"{short(k.key_id)} ({k.source})" for k in trusted)
        raise ChainBroken(f"{what} is signed by key {short(hint or '?')}, which is not trusted (trusted: {names})")
    with tempfile.TemporaryDirectory(prefix="conveyor-verify-") as tmp:
        signature = Path(tmp) / SIGNATURE_FILE
        signature.write_bytes(bundle)
        for key in candidates:
            public = Path(tmp) / "trusted.pub"
            public.write_bytes(public_pem(key.public))
            try:
                config = model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public)
                config.set_hashing_config(_hashing()).verify(folder, signature)
                return key.key_id
            except ValueError as exc:
                if "Signature mismatch" in str(exc) or "Hash mismatch" in str(exc):
                    raise ChainBroken(f"{what}: {_file_changes(folder, bundle)}") from None
                last = str(exc)
            except Exception as exc:  # a bundle that does not parse or a bad signature
                last = f"{type(exc).__name__}: {exc}"
        raise ChainBroken(f"the signature of {what} does not verify with the trusted keys: {last}")


def _file_changes(folder: Path, bundle: bytes) -> str:
    signed = signed_files(bundle)
    present = {
        p.relative_to(folder).as_posix(): p
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in IGNORED
    }
    changed = [path for path in sorted(signed.keys() & present.keys()) if sha256_file(present[path])[0] != signed[path]]
    parts = [f"{p} changed since it was signed" for p in changed]
    parts += [f"{p} was added after signing" for p in sorted(present.keys() - signed.keys())]
    parts += [f"{p} was removed after signing" for p in sorted(signed.keys() - present.keys())]
    return "; ".join(parts) or "the files do not match the signature"


def verify_version(registry: Registry, version: ModelVersion, folder: Path, trusted: list[TrustedKey]) -> str:
    """Check the registry's signature of ``version`` over its files in ``folder``; the signer's key id."""
    bundle = signature_bytes(registry, version)
    if bundle is None:
        raise ChainBroken(f"{version.ref} is not signed (conveyor models sign {version.ref} --key KEY)")
    return verify_folder(folder, bundle, trusted, version.ref)


def verify_stored(
    registry: Registry, ref: str, trusted: list[TrustedKey], progress: Progress | None = None
) -> tuple[ModelVersion, str]:
    """Check a version as the registry holds it now: every stored blob read and hashed, then the signature.

    An audit must look at the bytes, not at a copy made earlier: the blobs are streamed into a
    scratch folder (each checked against its recorded sha256, so a flipped byte is refused naming
    the file) and the signature is verified over what arrived.  Nothing is cached or kept."""
    version = registry.resolve(ref)
    bundle = signature_bytes(registry, version)
    if bundle is None:
        raise ChainBroken(f"{version.ref} is not signed (conveyor models sign {version.ref} --key KEY)")
    verified: list[str] = []
    with tempfile.TemporaryDirectory(prefix="conveyor-audit-") as tmp:
        try:
            download_version(
                version,
                registry.open_blob,
                Path(tmp) / "files",
                progress,
                check=lambda staging: verified.append(verify_folder(staging, bundle, trusted, version.ref)),
            )
        except BlobCorrupt as exc:
            raise ChainBroken(f"{version.ref}: {exc}") from None
    return version, verified[0]


def verify_downloaded(folder: Path, trusted: list[TrustedKey]) -> str:
    """The trusted signer of a downloaded folder, from the ``.conveyor-signature.json`` beside its files."""
    if not folder.is_dir():
        raise ChainBroken(f"--require-signed needs a model folder with {SIGNATURE_FILE} or a registry reference")
    signature = folder / SIGNATURE_FILE
    if not signature.is_file():
        raise ChainBroken(f"{folder} has no {SIGNATURE_FILE}: it is not signed (conveyor models download keeps it)")
    return verify_folder(folder, signature.read_bytes(), trusted, str(folder))


def trusted_for(
    registry: Registry, name: str, trusted: list[TrustedKey] | None, offered: list[TrustedKey] | None = None
) -> list[TrustedKey] | None:
    """The keys a download or serve of model ``name`` must check: the caller's, else the registry's policy's.

    ``trusted`` is a demand (--require-signed); ``offered`` are keys named without one
    (--trusted-key alone), used only if the registry's policy asks for a signature.  A model
    tagged ``require-signed=true`` (``conveyor models tag NAME require-signed=true``) is only
    handed out signed, checked against the offered keys, else $CONVEYOR_TRUSTED_KEYS."""
    from conveyor.supply_chain.keys import load_trusted_keys

    if trusted is not None:
        return trusted
    if not policy_requires_signature(registry, name):
        return None
    keys = offered or load_trusted_keys(None)
    if not keys:
        raise ChainBroken(
            f"the registry requires signed versions of {name} (model tag {POLICY_TAG}=true): "
            "pass --trusted-key KEY.pub, or set CONVEYOR_TRUSTED_KEYS"
        )
    return keys


def policy_requires_signature(registry: Registry, name: str) -> bool:
    """Whether the registry's policy (model tag ``require-signed=true``) asks for signed versions of ``name``."""
    return requires_signature(registry.get_model(name).tags)


def download_signed(
    registry: Registry,
    ref: str,
    dest: Path,
    trusted: list[TrustedKey] | None,
    progress: Progress | None = None,
    offered: list[TrustedKey] | None = None,
) -> tuple[ModelVersion, bool, str | None]:
    """Download ``ref`` into ``dest`` with its signature; with ``trusted``, refuse unless it verifies.

    The files are checked in the download's staging folder: a refused download leaves ``dest``
    as it was."""
    version = registry.resolve(ref)
    trusted = trusted_for(registry, version.name, trusted, offered)
    bundle = signature_bytes(registry, version)
    verified: list[str] = []
    if trusted is not None:
        if bundle is None:
            raise ChainBroken(f"{version.ref} is not signed: refusing to download it (--require-signed)")

        def check(staging: Path) -> None:
            verified.append(verify_folder(staging, bundle, trusted, version.ref))

    download_version(version, registry.open_blob, Path(dest), progress, check if trusted is not None else None)
    if bundle is not None:
        (Path(dest) / SIGNATURE_FILE).write_bytes(bundle)
    key = verified[0] if verified else None
    return version, bundle is not None, key
