# ruff: noqa: F811  (the fixtures imported from test_packaging are parameters here)
"""The supply chain of real images: podman builds, a loopback OCI registry, real keys.

A signed build passes every link, locally and on a "fresh runner" (a new CONVEYOR_HOME that
pulls the image and its attestations from the registry); each broken link is refused by name:
an untrusted key, an unsigned image, a provenance from another build, a moved tag, an SBOM
listing an unpinned package.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conveyor.registry.config import open_local
from tests.registry_fixtures import run_cli
from tests.test_packaging import _podman, base_image, home, oci_registry, podman  # noqa: F401


def links(image: str, *args: str, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    result = run_cli("verify", "--supply-chain", image, *args, "--json", env=env)
    report = json.loads(result.stdout)
    assert (result.returncode == 0) == report["ok"], result.stderr
    return {c["id"].removeprefix("supply-chain."): (c["status"], c["message"]) for c in report["checks"]}


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    for name in ("team", "other"):
        run_cli("keys", "generate", str(tmp_path / "keys" / name), check=True)
    return {f"{n}.{half}": tmp_path / "keys" / f"{n}.{half}" for n in ("team", "other") for half in ("key", "pub")}


@podman
def test_a_signed_build_passes_every_link_here_and_on_a_fresh_runner(
    home: Path,
    base_image: str,
    oci_registry: str,
    keys: dict[str, Path],
    tmp_path: Path,
) -> None:
    tag = f"localhost/conveyor-signed-votes:{int(time.time() * 1000)}"
    remote = f"{oci_registry}/signed-votes:1"
    run_cli("models", "sign", "votes:1", "--key", str(keys["team.key"]), check=True)
    built = run_cli("build", "votes:1", "-t", tag, "--base-image", base_image, "--sign", str(keys["team.key"]),
                    "--json", check=True)  # fmt: skip
    try:
        record = json.loads(built.stdout)
        assert record["signed_by"] and Path(record["attestations"], "provenance.dsse.json").is_file()
        here = links(tag, "--trusted-key", str(keys["team.pub"]))
        assert {name: status for name, (status, _) in here.items()} == dict.fromkeys(
            ["image", "attestations", "image-signature", "provenance", "sbom", "model-signature"], "passed"
        ), here
        assert "all pinned with hashes" in here["sbom"][1] and "SLSA provenance" in here["provenance"][1]

        untrusted = links(tag, "--trusted-key", str(keys["other.pub"]))
        for link in ("image-signature", "provenance", "model-signature"):
            assert untrusted[link][0] == "failed" and "which is not trusted" in untrusted[link][1]

        pushed = run_cli("push", tag, "--to", remote, "--sign", str(keys["team.key"]), "--no-tls-verify", "--json",
                         check=True)  # fmt: skip
        attachment = json.loads(pushed.stdout)["attestations_pushed"]
        assert attachment.startswith(f"{oci_registry}/signed-votes:sha256-") and attachment.endswith(".att")
        _podman("rmi", remote, attachment, check=False)
        # a fresh runner: nothing local but the model registry it is given and the public key
        fresh = {"CONVEYOR_HOME": str(tmp_path / "fresh-home"), "CONVEYOR_REGISTRY": str(home)}
        there = links(remote, "--pull", "--no-tls-verify", "--trusted-key", str(keys["team.pub"]), env=fresh)
        assert all(status == "passed" for status, _ in there.values()), there
        assert f"signed as {remote}" in there["image-signature"][1]
        without_pull = links(remote, "--trusted-key", str(keys["team.pub"]),
                             env={**fresh, "CONVEYOR_HOME": str(tmp_path / "other-home")})  # fmt: skip
        assert without_pull["attestations"][0] == "failed" and "--pull" in without_pull["attestations"][1]
    finally:
        _podman("rmi", tag, remote, check=False)


@podman
def test_each_broken_link_is_refused_by_name(
    home: Path,
    base_image: str,
    keys: dict[str, Path],
    vote_model: Path,
    tmp_path: Path,
) -> None:
    stamp = int(time.time() * 1000)
    signed_tag, unsigned_tag = f"localhost/conveyor-chain-a:{stamp}", f"localhost/conveyor-chain-b:{stamp}"
    open_local().register(vote_model, "votes")  # votes:2, never signed
    run_cli("models", "sign", "votes:1", "--key", str(keys["team.key"]), check=True)
    trust = ("--trusted-key", str(keys["team.pub"]))
    try:
        a = json.loads(run_cli("build", "votes:1", "-t", signed_tag, "--base-image", base_image, "--sign",
                               str(keys["team.key"]), "--json", check=True).stdout)  # fmt: skip
        b = json.loads(run_cli("build", "votes:2", "-t", unsigned_tag, "--base-image", base_image, "--json",
                               check=True).stdout)  # fmt: skip

        unsigned = links(unsigned_tag, *trust)
        assert unsigned["image-signature"] == ("failed", f"{unsigned_tag} is not signed "
                                               "(conveyor build --sign KEY, or conveyor push --sign KEY)")  # fmt: skip
        assert "carries no signature" in unsigned["provenance"][1]
        assert unsigned["model-signature"] == (
            "failed",
            "votes:2 is not signed (conveyor models sign votes:2 --key KEY)",
        )

        # a provenance signed by the trusted key, but for the other build
        shutil.copy(Path(a["attestations"]) / "provenance.dsse.json", Path(b["attestations"]) / "provenance.dsse.json")
        other_build = links(unsigned_tag, *trust)["provenance"]
        assert other_build[0] == "failed" and "it describes another build" in other_build[1]

        # a byte flipped in the registry's stored blob of the signed version: the audit reads the bytes
        entry = next(f for f in open_local().resolve("votes:1").files if f.path == "model.onnx")
        blob = home / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256
        intact = blob.read_bytes()
        blob.write_bytes(intact[:100] + bytes([intact[100] ^ 0x01]) + intact[101:])
        try:
            tampered = links(signed_tag, *trust)["model-signature"]
            assert tampered[0] == "failed" and "model.onnx" in tampered[1] and "corrupt" in tampered[1], tampered
        finally:
            blob.write_bytes(intact)

        # the signed tag moved onto the unsigned image
        _podman("tag", unsigned_tag, signed_tag)
        moved = links(signed_tag, *trust)
        assert moved["image"][0] == "failed" and "the tag was moved" in moved["image"][1]
    finally:
        _podman("rmi", signed_tag, unsigned_tag, check=False)


@podman
def test_an_sbom_listing_an_unpinned_package_is_refused(
    home: Path,
    base_image: str,
    keys: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build whose SBOM (inside the image, labelled, attested and signed) lists a package without a pin."""
    from conveyor.packaging import context as context_module
    from conveyor.packaging.builders import build
    from conveyor.packaging.context import default_wheelhouse, write_context
    from conveyor.supply_chain.keys import load_signing_key
    from conveyor.supply_chain.record import record_build

    real = context_module.write_sbom

    def with_an_unpinned_package(*args, **kwargs) -> str:  # type: ignore[no-untyped-def]
        document = json.loads(real(*args, **kwargs))
        document["components"].append({"type": "library", "name": "left-pad", "bom-ref": "pypi:left-pad"})
        return json.dumps(document)

    monkeypatch.setattr(context_module, "write_sbom", with_an_unpinned_package)
    tag = f"localhost/conveyor-bad-sbom:{int(time.time() * 1000)}"
    version, folder = open_local().cached("votes:1")
    started = datetime.now(UTC)
    context = write_context(version, folder, tmp_path / "ctx", base_image, title=tag, wheel_cache=default_wheelhouse())
    try:
        image = build(context.path, tag, "podman")
        record_build(context, image, started, datetime.now(UTC), load_signing_key(keys["team.key"]))
        sbom = links(tag, "--trusted-key", str(keys["team.pub"]))["sbom"]
        assert sbom == ("failed", "the SBOM does not hold: left-pad is not pinned (version missing, sha256 missing)")
    finally:
        _podman("rmi", tag, check=False)
