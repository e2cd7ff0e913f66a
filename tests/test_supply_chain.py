"""Supply chain without containers: keys, model signatures through the registry, the SBOM rules,
the rollout gate and the generated workflow's secret.

Real keys (``conveyor keys generate``), real OpenSSF model-signing bundles, a real router and
controller for the gate; the image links (SBOM in the image, provenance, image signature) are
proven with real podman builds in ``test_supply_chain_images.py``.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conveyor.supply_chain.sbom import SbomFacts, check_sbom, parse_lock
from tests.conftest import free_port, start_server
from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import admin, fake_command, kill_backends, start_router


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    for name in ("team", "other"):
        run_cli("keys", "generate", str(tmp_path / "keys" / name), check=True)
    return {n: tmp_path / "keys" / n for n in ("team", "other")}


@pytest.fixture
def signed(conveyor_home: Path, vote_model: Path, keys: dict[str, Path]) -> str:
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)
    result = run_cli("models", "sign", "votes:1", "--key", f"{keys['team']}.key", "--json", check=True)
    assert json.loads(result.stdout)["key_id"]
    return "votes:1"


def test_generated_keys_keep_the_private_half_private(keys: dict[str, Path]) -> None:
    private, public = Path(f"{keys['team']}.key"), Path(f"{keys['team']}.pub")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and b"PUBLIC KEY" in public.read_bytes()
    again = run_cli("keys", "generate", str(keys["team"]))
    assert again.returncode == 2 and "exists" in again.stderr


def test_a_signed_version_verifies_downloads_with_its_signature_and_the_openssf_tool_agrees(
    signed: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    ok = run_cli("models", "verify-signature", signed, "--trusted-key", f"{keys['team']}.pub")
    assert ok.returncode == 0 and "signed by trusted key" in ok.stdout
    out = tmp_path / "download"
    got = run_cli("models", "download", signed, "-o", str(out), "--require-signed", "--trusted-key",
                  f"{keys['team']}.pub", "--json", check=True)  # fmt: skip
    assert json.loads(got.stdout)["signed"] is True
    assert (out / ".conveyor-signature.json").is_file() and (out / "model.onnx").is_file()
    # the signature is plain OpenSSF model signing: their own command accepts the download
    tool = Path(sys.executable).parent / "model_signing"
    checked = subprocess.run(
        [str(tool), "verify", "key", str(out), "--signature", str(out / ".conveyor-signature.json"),
         "--public_key", f"{keys['team']}.pub"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr


def test_an_untrusted_key_and_an_unsigned_version_are_refused_and_nothing_is_written(
    signed: str, keys: dict[str, Path], vote_model: Path, tmp_path: Path
) -> None:
    other = run_cli("models", "verify-signature", signed, "--trusted-key", f"{keys['other']}.pub")
    assert other.returncode == 1 and "which is not trusted" in other.stderr
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)  # votes:2, unsigned
    out = tmp_path / "refused"
    refused = run_cli("models", "download", "votes:2", "-o", str(out), "--require-signed", "--trusted-key",
                      f"{keys['team']}.pub")  # fmt: skip
    assert refused.returncode == 1 and "votes:2 is not signed" in refused.stderr
    assert not out.exists()
    untrusted = run_cli("models", "download", signed, "-o", str(out), "--require-signed", "--trusted-key",
                        f"{keys['other']}.pub")  # fmt: skip
    assert untrusted.returncode == 1 and "not trusted" in untrusted.stderr
    assert not out.exists() and not list(tmp_path.glob(".refused-*")), "a refused download left files"


def test_a_flipped_byte_in_a_downloaded_model_is_refused_by_serve_naming_the_file(
    signed: str, keys: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "download"
    run_cli("models", "download", signed, "-o", str(out), check=True)
    data = bytearray((out / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (out / "model.onnx").write_bytes(bytes(data))
    served = run_cli("serve", str(out), "--require-signed", "--trusted-key", f"{keys['team']}.pub", "--port", "9")
    assert served.returncode == 1
    assert "model.onnx changed since it was signed" in served.stderr and "Traceback" not in served.stderr
    (out / "extra.txt").write_text("added")
    (out / "model.onnx").unlink()
    served = run_cli("serve", str(out), "--require-signed", "--trusted-key", f"{keys['team']}.pub", "--port", "9")
    assert "extra.txt was added after signing" in served.stderr and "model.onnx was removed" in served.stderr


def test_serve_of_a_registry_reference_checks_the_registry_signature(
    conveyor_home: Path, vote_model: Path, keys: dict[str, Path]
) -> None:
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)
    served = run_cli("serve", "votes:1", "--require-signed", "--trusted-key", f"{keys['team']}.pub", "--port", "9")
    assert served.returncode == 1 and "votes:1 is not signed" in served.stderr


def test_the_sbom_rules_name_unpinned_and_unlocked_packages() -> None:
    lock = parse_lock("numpy==2.1.0 \\\n    --hash=sha256:aa\nrequests==2.32.0 \\\n    --hash=sha256:bb\n")
    good = SbomFacts({"numpy": ("2.1.0", "aa"), "requests": ("2.32.0", "bb")}, "d", {})
    assert check_sbom(good, lock) == []
    unpinned = SbomFacts({"numpy": ("2.1.0", "aa"), "requests": (None, None)}, "d", {})
    assert check_sbom(unpinned, lock) == ["requests is not pinned (version missing, sha256 missing)"]
    outside = SbomFacts({"numpy": ("2.1.0", "aa"), "requests": ("2.32.0", "bb"), "left-pad": ("1.0", "cc")}, "d", {})
    assert check_sbom(outside, lock) == ["left-pad==1.0 is not in the image's lock"]
    other_hash = SbomFacts({"numpy": ("2.1.0", "zz"), "requests": ("2.32.0", "bb")}, "d", {})
    assert "numpy==2.1.0 differs from the lock" in check_sbom(other_hash, lock)[0]
    missing = SbomFacts({"numpy": ("2.1.0", "aa")}, "d", {})
    assert check_sbom(missing, lock) == ["the SBOM leaves out installed packages: requests"]


def test_a_rollout_of_an_unsigned_canary_under_a_signing_policy_is_refused_before_traffic_moves(
    conveyor_home: Path, vote_model: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    router = start_router(tmp_path)
    try:
        run_cli("models", "register", str(vote_model), "--name", "svc", check=True)
        run_cli("models", "register", str(vote_model), "--name", "svc", check=True)
        run_cli("rollout", "start", "v1", "--service", "svc", "--command", fake_command("healthy"), check=True)
        before = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
        project = tmp_path / "project"
        project.mkdir()
        shutil.copy(f"{keys['team']}.pub", project / "team.pub")
        (project / "conveyor.yaml").write_text(
            "rollout:\n  supply_chain:\n    require: true\n    trusted_keys: [team.pub]\n"
        )
        refused = run_cli("rollout", "start", "svc:2", "--service", "svc", "--command", fake_command("healthy"),
                          "--config", str(project / "conveyor.yaml"))  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert "refused svc:2 before any traffic moved: model-signature: svc:2 is not signed" in refused.stderr
        assert (
            httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
            == before
        )
        status = json.loads(run_cli("rollout", "status", "svc", "--json", check=True).stdout)
        assert status["ref"] == "v1" and status["phase"] == "succeeded", "the refused rollout left a record"

        run_cli("models", "sign", "svc:2", "--key", f"{keys['team']}.key", check=True)
        other = run_cli("rollout", "start", "svc:2", "--service", "svc", "--command", fake_command("healthy"),
                        "--require-signed", "--trusted-key", f"{keys['other']}.pub")  # fmt: skip
        assert other.returncode == 1 and "not trusted" in other.stderr
        accepted = run_cli("rollout", "start", "svc:2", "--service", "svc", "--command", fake_command("healthy"),
                           "--config", str(project / "conveyor.yaml"), "--detach", "--json")  # fmt: skip
        assert accepted.returncode == 0, accepted.stderr
        run_cli("rollout", "abort", "svc", check=True)
    finally:
        router.stop()
        kill_backends(conveyor_home)


def test_the_registry_policy_alone_refuses_an_unsigned_canary_before_a_backend_starts(
    conveyor_home: Path, vote_model: Path, keys: dict[str, Path], tmp_path: Path
) -> None:
    router = start_router(tmp_path)
    try:
        for _ in range(2):
            run_cli("models", "register", str(vote_model), "--name", "svc", check=True)
        run_cli("rollout", "start", "v1", "--service", "svc", "--command", fake_command("healthy"), check=True)
        run_cli("models", "tag", "svc", "require-signed=true", check=True)
        logs_before = sorted((conveyor_home / "rollouts").rglob("*.log"))
        refused = run_cli("rollout", "start", "svc:2", "--service", "svc", "--command", fake_command("healthy"),
                          "--trusted-key", f"{keys['team']}.pub")  # fmt: skip
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.count("svc:2 is not signed") == 1, refused.stderr
        assert "refused svc:2 before any traffic moved" in refused.stderr
        assert sorted((conveyor_home / "rollouts").rglob("*.log")) == logs_before, "a canary backend was started"
        status = json.loads(run_cli("rollout", "status", "svc", "--json", check=True).stdout)
        assert status["ref"] == "v1" and status["phase"] == "succeeded", "the refused rollout left a record"
        no_keys = run_cli("rollout", "start", "svc:2", "--service", "svc", "--command", fake_command("healthy"))
        assert no_keys.returncode == 1 and "names no trusted keys" in no_keys.stderr
    finally:
        router.stop()
        kill_backends(conveyor_home)


def test_the_generated_workflow_gives_the_signing_secret_only_to_jobs_that_sign(tmp_path: Path) -> None:
    from conveyor.pipeline.github import workflow
    from conveyor.pipeline.spec import get_pipeline, load_project

    (tmp_path / "conveyor.yaml").write_text(
        "pipelines:\n"
        "  release:\n"
        "    steps:\n"
        "      test: {run: 'true'}\n"
        "      register: {uses: register, needs: [test], with: {path: model, name: m, sign: true}}\n"
        "      build: {uses: build, needs: [register], with: {ref: m, tag: 'ghcr.io/o/m:1'}}\n"
        "      push: {uses: push, needs: [build], with: {image: '${{ steps.build.outputs.image }}'}}\n"
    )
    pipeline = get_pipeline(load_project(tmp_path / "conveyor.yaml"), "release", tmp_path / "conveyor.yaml")
    jobs = workflow("release", pipeline)["jobs"]
    secret = "${{ secrets.CONVEYOR_SIGNING_KEY }}"
    assert jobs["register"]["env"] == {"CONVEYOR_SIGNING_KEY": secret}
    assert jobs["build"]["env"] == {"CONVEYOR_SIGNING_KEY": secret}  # build and push share the builder's job
    assert "env" not in jobs["test"]


def test_a_registry_policy_tag_makes_downloads_and_serving_require_a_trusted_signature(
    signed: str, keys: dict[str, Path], vote_model: Path, tmp_path: Path
) -> None:
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)  # votes:2, unsigned
    run_cli("models", "tag", "votes", "require-signed=true", check=True)
    out = tmp_path / "policy"
    refused = run_cli("models", "download", signed, "-o", str(out))
    assert refused.returncode == 1 and "requires signed versions of votes" in refused.stderr
    assert not out.exists()
    trusting = {"CONVEYOR_TRUSTED_KEYS": f"{keys['team']}.pub"}
    got = run_cli("models", "download", signed, "-o", str(out), "--json", env=trusting, check=True)
    assert json.loads(got.stdout)["signed_by"]
    unsigned = run_cli("serve", "votes:2", "--port", "9", env=trusting)
    assert unsigned.returncode == 1 and "votes:2 is not signed" in unsigned.stderr


def test_under_the_registry_policy_a_trusted_key_alone_is_enough(
    signed: str, keys: dict[str, Path], vote_model: Path, tmp_path: Path
) -> None:
    run_cli("models", "register", str(vote_model), "--name", "votes", check=True)  # votes:2, unsigned
    run_cli("models", "tag", "votes", "require-signed=true", check=True)
    trust = ("--trusted-key", f"{keys['team']}.pub")
    got = run_cli("models", "download", signed, "-o", str(tmp_path / "got"), *trust, "--json")
    assert got.returncode == 0, got.stderr
    assert (
        json.loads(got.stdout)["signed_by"]
        == json.loads(run_cli("models", "verify-signature", signed, *trust, "--json", check=True).stdout)["signed_by"]
    )
    refused = run_cli("models", "download", "votes:2", "-o", str(tmp_path / "refused"), *trust)
    assert refused.returncode == 1 and "votes:2 is not signed" in refused.stderr
    server = start_server(signed, *trust, tmp_path=tmp_path)
    try:
        assert httpx.post(f"{server.url}/predict", json=["good"], timeout=10).status_code == 200
        assert "signed by trusted key" in server.log()
    finally:
        server.stop()
    unsigned = run_cli("serve", "votes:2", *trust, "--port", str(free_port()))
    assert unsigned.returncode == 1 and "votes:2 is not signed" in unsigned.stderr
    # a key named without the policy asks for nothing: an unsigned version of another model serves
    run_cli("models", "register", str(vote_model), "--name", "free", check=True)
    free = start_server("free:1", *trust, tmp_path=tmp_path)
    free.stop()


def _flip_stored_blob(home: Path, ref: str, path: str) -> None:
    from conveyor.registry.config import open_local

    entry = next(f for f in open_local().resolve(ref).files if f.path == path)
    blob = home / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_stored_blob_is_refused_by_download_serve_and_verify_signature(
    signed: str, keys: dict[str, Path], conveyor_home: Path, tmp_path: Path
) -> None:
    from conveyor.registry.config import open_local

    trust = ("--trusted-key", f"{keys['team']}.pub")
    open_local().cached(signed)  # an intact copy in the cache, made before the store was changed
    _flip_stored_blob(conveyor_home, signed, "model.onnx")
    out = tmp_path / "download"
    download = run_cli("models", "download", signed, "-o", str(out))
    assert download.returncode == 1 and "model.onnx" in download.stderr and "corrupt" in download.stderr
    assert not out.exists()
    served = run_cli("serve", signed, "--port", str(free_port()), timeout=60)
    assert served.returncode == 1 and "model.onnx" in served.stderr and "corrupt" in served.stderr
    audit = run_cli("models", "verify-signature", signed, *trust)
    assert audit.returncode == 1 and "model.onnx" in audit.stderr and "corrupt" in audit.stderr
    assert "Traceback" not in download.stderr + served.stderr + audit.stderr
