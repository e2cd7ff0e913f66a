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
from tests.machine import tool
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
    pytest.mark.usefixtures("_containers_installed"),
]


@pytest.fixture
def _containers_installed() -> None:
    tool("podman")
    tool("docker-registry")


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


@pytest.fixture(scope="session")
def stand_in_index(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conveyor's wheel, its dependencies, the pinned uv and setuptools in one folder: the index the jobs use."""
    folder = tmp_path_factory.mktemp("index") / "packages"
    folder.mkdir()
    shutil.copy(wheel, folder)
    pins = [line.split(" ")[0] for line in (REPO / "requirements.lock").read_text().splitlines() if "==" in line]
    constraints = folder.parent / "constraints.txt"
    constraints.write_text("\n".join(p for p in pins if not p.startswith("#")) + "\n")
    download = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(folder)]
    # [all]: each job installs conveyor-ml with its own steps' extras; setuptools: a git install builds
    wanted = ["conveyor-ml[all]", "pytest>=8,<10", UV, "setuptools>=69", "wheel"]
    subprocess.run([*download, "--find-links", str(folder), "-c", str(constraints), *wanted], check=True, timeout=600)
    return folder


def _index_without_conveyor(index: Path, folder: Path) -> Path:
    """The same index without Conveyor's own wheel: a job can only get Conveyor the way ci.install says."""
    folder.mkdir()
    for package in index.iterdir():
        if not package.name.startswith("conveyor_ml-"):
            os.link(package, folder / package.name)
    return folder


def _act(
    repo: Path,
    workflow: Path,
    tmp_path: Path,
    packages: Path,
    *,
    secrets: dict[str, str] | None = None,
    inputs: dict[str, str] | None = None,
    registries_conf: Path | None = None,
) -> str:
    """Run WORKFLOW's workflow_dispatch with act, each job on a fresh stand-in runner; the whole log."""
    if registries_conf is None:
        registries_conf = tmp_path / "registries.conf"
        registries_conf.write_text("unqualified-search-registries = []\n")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    command = [str(ACT), "workflow_dispatch", "-W", str(workflow), "-P", "ubuntu-latest=-self-hosted"]
    command.append("--no-cache-server")
    for action, folder in STANDINS.items():
        command += ["--local-repository", f"{action}={ACTIONS / folder}"]
    for name, value in (secrets or {}).items():
        command += ["--secret", f"{name}={value}"]
    for name, value in (inputs or {}).items():
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
    return text


def _commit_all(repo: Path) -> None:
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "init"],
        check=True,
    )


@pytest.mark.slow(seconds=400)
@pytest.mark.timeout(1800)
def test_init_register_and_the_generated_workflow_delivers_on_fresh_runners(
    user: User,
    wheel: Path,
    vote_folder: Path,
    base_image: str,  # noqa: F811
    container_registry: tuple[str, subprocess.Popen[bytes]],
    stand_in_index: Path,
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
    _commit_all(repo)

    registries_conf = tmp_path / "registries.conf"
    registries_conf.write_text(
        f'unqualified-search-registries = []\n[[registry]]\nlocation = "{oci}"\ninsecure = true\n'
    )
    secrets = {
        "CONVEYOR_REGISTRY": registry.url,
        "CONVEYOR_TOKEN": token,
        "CONTAINER_REGISTRY": oci,
        "CONTAINER_REGISTRY_USERNAME": USER,
        "CONTAINER_REGISTRY_PASSWORD": PASSWORD,
        "CONVEYOR_SIGNING_KEY": signing_key.read_text(),
    }
    inputs = {"image": f"{oci}/sentiment", "base_image": f"{oci}/conveyor-base:bookworm", "tls_verify": "false"}
    text = _act(
        repo, workflow, tmp_path, stand_in_index, secrets=secrets, inputs=inputs, registries_conf=registries_conf
    )
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


INSTALLED_AS = """\
import importlib.metadata, json, subprocess, sys

# How this runner got Conveyor (PEP 610's direct_url.json), checked against what ci.install said.
origin = json.loads(importlib.metadata.distribution("conveyor-ml").read_text("direct_url.json"))
form, expected = sys.argv[1], sys.argv[2]
if form == "git":
    vcs = origin.get("vcs_info", {})
    assert vcs.get("vcs") == "git" and vcs.get("commit_id") == expected, origin
else:
    assert origin["url"].endswith("/vendor/" + expected), origin
version = subprocess.run(["conveyor", "--version"], capture_output=True, text=True, check=True).stdout
assert version.startswith("conveyor "), version
"""


@pytest.mark.timeout(900)
@pytest.mark.parametrize("form", ["wheel", "git"])
def test_ci_install_takes_a_wheel_in_the_repository_and_a_git_url_on_fresh_runners(
    user: User, wheel: Path, stand_in_index: Path, tmp_path: Path, form: str
) -> None:
    """The README's install forms, written into ci.install as they are, under act with no Conveyor on the index."""
    repo = user.workdir / "sentiment-service"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    user.ok("init", str(repo), "--name", "sentiment")
    if form == "wheel":
        (repo / "vendor").mkdir()
        shutil.copy(wheel, repo / "vendor")
        install, expected = f"./vendor/{wheel.name}", wheel.name
    else:  # a tag of Conveyor's repository; file:// stands in for https://github.com/OWNER/conveyor
        source = tmp_path / "conveyor.git"
        subprocess.run(["git", "clone", "-q", "--bare", str(REPO), str(source)], check=True)
        subprocess.run(["git", "-C", str(source), "tag", "v0.1.0", "HEAD"], check=True)
        expected = subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        install = f"conveyor-ml @ git+file://{source}@v0.1.0"  # the README's line, unquoted, as a user copies it
    project = yaml.safe_load((repo / "conveyor.yaml").read_text())
    project["ci"]["install"] = [install, "pytest>=8,<10"]
    project["pipelines"]["installed"] = {
        "steps": {
            "report": {"run": f"python installed_as.py {form} {expected}"},
            # a step with an extra: the job installs the same entry with [lint] added (path.whl[lint], name[lint] @ URL)
            "lint": {"uses": "lint", "with": {"path": "tests"}},
        },
    }
    (repo / "conveyor.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    (repo / "installed_as.py").write_text(INSTALLED_AS)
    user.ok("ci", "github", "installed", "-f", str(repo / "conveyor.yaml"), "-o", str(repo / ".github" / "workflows"))
    workflow = repo / ".github" / "workflows" / "conveyor-installed.yml"
    _commit_all(repo)
    assert (
        "vendor/"
        not in subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--ignored"], capture_output=True, text=True
        ).stdout
    )  # the committed wheel is not swallowed by the generated .gitignore

    text = _act(repo, workflow, tmp_path, _index_without_conveyor(stand_in_index, tmp_path / "deps"))
    assert text.count("🏁  Job succeeded") == 2, text[-8000:]  # the lint job fails without the [lint] extra
