"""Journey: continuous delivery from a team's own repository, on a real workflow engine.

A new Git repository that holds none of Conveyor's files: `conveyor init --ci github`, one model
registered in a registry server (weights stay out of git), then the generated workflow runs with
act, the GitHub Actions engine, every job on a fresh runner (tests/actions/README.md): Conveyor is
installed pinned from a local package folder standing in for PyPI, the model comes from the
registry with the repository's secrets, the image is built, verified and pushed to a registry
with password authentication, and `@staging` moves.  Then the pushed image is pulled into clean
container storage, started, and answers the classic call.
"""

from __future__ import annotations

import crypt  # bcrypt for htpasswd (Python 3.11's; libxcrypt provides it)
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from conveyor.pipeline.github import UV
from tests.conftest import REPO, free_port
from tests.journeys.conftest import Spawned, User, copy_model, wait_http
from tests.test_packaging import base_image  # noqa: F401 (the debootstrapped base, made once)

ACT = Path(sys.executable).parent / "act"
ACTIONS = REPO / "tests" / "actions"
STANDINS = {
    "actions/setup-python@v6": "setup-python",
    "actions/upload-artifact@v6": "upload-artifact",
    "actions/download-artifact@v7": "download-artifact",
    "docker/login-action@v4": "login",
}
USER, PASSWORD = "ci-bot", "s3cret-push-password"

pytestmark = [
    pytest.mark.slow,  # a fresh repository's workflow under act: several fresh runners
    pytest.mark.skipif(
        shutil.which("podman") is None or shutil.which("docker-registry") is None,
        reason="podman and Debian's docker-registry are needed (.ci/run installs them)",
    ),
]


def _podman(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, env=env)


@pytest.fixture
def container_registry(tmp_path: Path) -> tuple[str, subprocess.Popen[bytes]]:
    """Debian's docker-registry on loopback, with htpasswd (bcrypt) authentication."""
    root = tmp_path / "oci"
    root.mkdir()
    (root / "htpasswd").write_text(f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
    port = free_port()
    config = {
        "version": 0.1,
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
        "auth": {"htpasswd": {"realm": "conveyor-test", "path": str(root / "htpasswd")}},
    }
    (root / "config.yml").write_text(yaml.safe_dump(config))
    with open(root / "registry.log", "wb") as log:
        process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")], stdout=log, stderr=log)
    host = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{host}/v2/", timeout=1).status_code == 401:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "docker-registry did not start"
        time.sleep(0.1)
    yield host, process
    process.terminate()
    process.wait(10)


def _packages(wheel: Path, folder: Path) -> Path:
    """Conveyor's wheel, its dependencies and the pinned uv in one folder: the index the jobs install from."""
    folder.mkdir()
    shutil.copy(wheel, folder)
    pins = [line.split(" ")[0] for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line]
    constraints = folder.parent / "constraints.txt"
    constraints.write_text("\n".join(p for p in pins if not p.startswith("#")) + "\n")
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(folder)]
    subprocess.run(
        [*download, "--find-links", str(folder), "-c", str(constraints), "conveyor-ml", "pytest>=8,<10", UV],
        check=True,
        timeout=600,
    )
    return folder


@pytest.mark.timeout(1800)
def test_init_register_and_the_generated_workflow_delivers_on_fresh_runners(
    user: User,
    wheel: Path,
    vote_folder: Path,
    base_image: str,  # noqa: F811
    container_registry: tuple[str, subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    oci, _ = container_registry
    host_env = {**os.environ, "REGISTRY_AUTH_FILE": str(tmp_path / "host-auth.json")}
    _podman("login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, oci, env=host_env)
    _podman("push", "--tls-verify=false", base_image, f"docker://{oci}/conveyor-base:bookworm", env=host_env)

    # the model registry, with a write token for CI and the model registered from outside the repository
    registry_port = free_port()
    registry = user.spawn("registry", "serve", "--port", str(registry_port), name="registry")
    registry.url = f"http://127.0.0.1:{registry_port}"
    wait_http(registry, "/healthz")
    token = user.ok("registry", "token", "create", "ci-github", "--scope", "write").stdout.strip()
    trained = copy_model(vote_folder, tmp_path / "trained" / "sentiment")
    remote = {"CONVEYOR_REGISTRY": registry.url, "CONVEYOR_TOKEN": token}
    user.ok("models", "register", str(trained), "--name", "sentiment", env=remote)
    # the team's signing key: the model is signed from outside, CI signs the build with the secret
    user.ok("keys", "generate", "team")
    signing_key, trusted_key = user.workdir / "team.key", user.workdir / "team.pub"
    user.ok("models", "sign", "sentiment:1", "--key", str(signing_key), env=remote)

    # a team's new repository: conveyor init, and nothing of Conveyor's own tree
    repo = user.workdir / "sentiment-service"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    scaffold = user.run("init", str(repo), "--name", "sentiment", "--ci", "github", "--registry", registry.url)
    assert scaffold.returncode == 0, scaffold.stderr
    workflow = repo / ".github" / "workflows" / "conveyor-deliver.yml"
    lint = subprocess.run(
        [str(Path(sys.executable).parent / "actionlint"), str(workflow)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
        check=True,
    )

    packages = _packages(wheel, tmp_path / "packages")
    registries_conf = tmp_path / "registries.conf"
    registries_conf.write_text(
        f'unqualified-search-registries = []\n[[registry]]\nlocation = "{oci}"\ninsecure = true\n'
    )
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [
        str(ACT),
        "workflow_dispatch",
        "-W",
        str(workflow),
        "-P",
        "ubuntu-latest=-self-hosted",
        "--no-cache-server",
    ]
    for action, folder in STANDINS.items():
        command += ["--local-repository", f"{action}={ACTIONS / folder}"]
    for name, value in {
        "CONVEYOR_REGISTRY": registry.url,
        "CONVEYOR_TOKEN": token,
        "CONTAINER_REGISTRY": oci,
        "CONTAINER_REGISTRY_USERNAME": USER,
        "CONTAINER_REGISTRY_PASSWORD": PASSWORD,
        "CONVEYOR_SIGNING_KEY": signing_key.read_text(),
    }.items():
        command += ["--secret", f"{name}={value}"]
    for name, value in {
        "image": f"{oci}/sentiment",
        "base_image": f"{oci}/conveyor-base:bookworm",
        "tls_verify": "false",
    }.items():
        command += ["--input", f"{name}={value}"]
    for name, value in {
        "STANDIN_PACKAGES": str(packages),
        "STANDIN_UV": str(Path(sys.executable).parent / "uv"),
        "STANDIN_ARTIFACTS": str(artifacts),
        "STANDIN_REGISTRIES_CONF": str(registries_conf),
    }.items():
        command += ["--env", f"{name}={value}"]
    act_home = tmp_path / "act-home"
    act_home.mkdir()
    # a GitHub runner's environment: none of ours (PYTHONDONTWRITEBYTECODE neither: a job's first
    # conveyor command leaves its bytecode for the next ones, as there)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("CONVEYOR_", "VIRTUAL_ENV", "PIP_", "PYTHONDONTWRITEBYTECODE"))
    }
    env.update(HOME=str(act_home), PATH=f"{Path(sys.executable).parent.parent.parent / 'bin'}:{os.environ['PATH']}")
    env["PATH"] = ":".join(p for p in env["PATH"].split(":") if ".venv" not in p)  # jobs bring their own Python
    log = tmp_path / "act.log"
    with open(log, "w") as out:
        finished = subprocess.run(command, cwd=repo, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1500)
    text = log.read_text(errors="replace")
    assert finished.returncode == 0, text[-8000:]
    # six jobs, each on its own fresh runner; the image was built, verified and pushed in one of them
    assert text.count("🏁  Job succeeded") == 6, text[-8000:]
    assert "[conveyor deliver/build -> verify-image -> push]" in text
    assert PASSWORD not in text and token not in text  # secrets stay masked in the logs
    assert "PRIVATE KEY" not in text

    staged = json.loads(user.ok("models", "show", "sentiment@staging", "--json", env=remote).stdout)
    assert staged["version"] == 1

    # the pushed image, pulled into empty storage as a production machine would, answers the classic call
    clean = tmp_path / "clean"
    (clean / "storage").mkdir(parents=True)
    (clean / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{clean / "storage"}"\nrunroot = "{clean / "run"}"\n'
    )
    clean_env = {**host_env, "CONTAINERS_STORAGE_CONF": str(clean / "storage.conf")}
    clean_env["REGISTRY_AUTH_FILE"] = str(clean / "auth.json")
    _podman("login", "--tls-verify=false", "-u", USER, "-p", PASSWORD, oci, env=clean_env)
    image = f"{oci}/sentiment:1"
    _podman("pull", "--tls-verify=false", image, env=clean_env)
    labels = json.loads(_podman("image", "inspect", image, "--format", "{{json .Config.Labels}}", env=clean_env).stdout)
    assert labels["ai.conveyor.model.digest"] == f"sha256:{staged['digest']}"
    # the production machine checks the whole chain the fresh runner signed and pushed beside the image
    production = {**remote, "CONVEYOR_HOME": str(clean / "conveyor-home")}
    production.update({k: v for k, v in clean_env.items() if k in ("CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE")})
    chain = user.run("verify", "--supply-chain", image, "--pull", "--no-tls-verify", "--trusted-key",
                     str(trusted_key), "--json", env=production)  # fmt: skip
    assert chain.returncode == 0, chain.stdout + chain.stderr
    assert [c["status"] for c in json.loads(chain.stdout)["checks"]] == ["passed"] * 6
    port = free_port()
    name = f"delivered-{port}"
    _podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:5000", image, env=clean_env)
    try:
        server = Spawned(subprocess.Popen(["sleep", "600"]), tmp_path / "none.log", f"http://127.0.0.1:{port}")
        server.log_path.write_text("")
        wait_http(server, "/v2/health/ready", timeout=90)
        server.stop()
        answer = httpx.post(f"http://127.0.0.1:{port}/predict", json=["good great"], timeout=10)
        assert answer.status_code == 200 and answer.json() == {"positive": True}
        assert httpx.post(f"http://127.0.0.1:{port}/predict", json=["bad awful"], timeout=10).json() == {
            "positive": False
        }
    finally:
        _podman("rm", "-f", name, env=clean_env, check=False)
