"""A complete, readable build context for one registered model version.

DIR/
  Dockerfile          base -> dependencies -> model -> app, each its own cached layer
  requirements.txt    exact versions with sha256 hashes
  wheels/             those wheels, for an offline, reproducible install
  model/              the version's files, exactly as registered, less original/ (a converted
                      version's framework file: never served, and it would carry the framework's weights twice)
  omitted.tsv         only when original/ is left out: its files' sha256, so the image still checks the digest
  spec/model.yaml     only for a bare ONNX version: the spec `conveyor serve` infers for it
  sbom/sbom.cdx.json  CycloneDX SBOM of the wheels, the model files and the server
  app/conveyor/       the model server code
  .dockerignore
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

import conveyor
from conveyor import __version__
from conveyor.digest import digest_of_pairs, folder_pairs, write_pairs
from conveyor.errors import ConveyorError, ModelLoadError
from conveyor.extras import require
from conveyor.packaging import DEFAULT_BASE, TASK_LABEL
from conveyor.packaging.engine_wheel import engine_wheel, is_engine
from conveyor.packaging.requirements import closure, download_wheels, image_roots, requirements_text
from conveyor.registry.base import Progress
from conveyor.registry.records import ModelVersion
from conveyor.serving.spec import ORIGINAL_FOLDER, SPEC_FILE, inferred_spec
from conveyor.supply_chain.sbom import SBOM_FILE, SBOM_IN_IMAGE, SBOM_LABEL, write_sbom

USER_ID = 10001
PORT = 5000


@dataclass(frozen=True)
class BuildContext:
    path: Path
    version: ModelVersion
    base_image: str
    labels: dict[str, str]
    sbom_digest: str
    platform: str


def default_wheelhouse() -> Path:
    """Where downloaded wheels are kept between builds: CONVEYOR_WHEELHOUSE, else $CONVEYOR_HOME/wheelhouse."""
    from conveyor.home import conveyor_home

    return Path(os.environ.get("CONVEYOR_WHEELHOUSE") or conveyor_home() / "wheelhouse")


def git_value(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def source_repository() -> str | None:
    """The repository an image is built from, for ``org.opencontainers.image.source``: what the CI
    says ($CONVEYOR_SOURCE_URL, GitHub's server and repository, GitLab's project URL), else this
    checkout's ``origin`` remote as a browsable URL without credentials; never a local folder."""
    if os.environ.get("CONVEYOR_SOURCE_URL"):
        return os.environ["CONVEYOR_SOURCE_URL"]
    if os.environ.get("GITHUB_REPOSITORY"):
        server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
        return f"{server}/{os.environ['GITHUB_REPOSITORY']}"
    if os.environ.get("CI_PROJECT_URL"):
        return os.environ["CI_PROJECT_URL"]
    remote = git_value("config", "--get", "remote.origin.url")
    return repository_url(remote) if remote else None


def repository_url(remote: str) -> str | None:
    """``git@host:owner/repo.git`` or ``https://user:token@host/owner/repo.git`` -> ``https://host/owner/repo``."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in remote:
        host, sep, path = remote.partition(":")
        if not sep or "/" in host:
            return None  # a local path, not a repository anyone else can open
        remote = f"https://{host.split('@')[-1]}/{path}"
    parts = urlsplit(remote)
    if parts.scheme == "file" or not parts.hostname:
        return None
    scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
    host = parts.hostname + (f":{parts.port}" if parts.port and scheme == parts.scheme else "")
    return urlunsplit((scheme, host, parts.path.removesuffix(".git"), "", ""))


def image_labels(version: ModelVersion, title: str | None) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.title": title or version.name,
        "org.opencontainers.image.description": version.description or f"{version.name} served by Conveyor",
        "org.opencontainers.image.version": str(version.version),
        "org.opencontainers.image.created": datetime.now(UTC).replace(microsecond=0).isoformat(),
        "org.opencontainers.image.vendor": "conveyor",
        "ai.conveyor.model.name": version.name,
        "ai.conveyor.model.version": str(version.version),
        "ai.conveyor.model.digest": f"sha256:{version.digest}",
        "ai.conveyor.version": __version__,
    }
    source = source_repository()
    revision = os.environ.get("GITHUB_SHA") or git_value("rev-parse", "HEAD") or version.lineage.git_commit
    if source:
        labels["org.opencontainers.image.source"] = source
    if revision:
        labels["org.opencontainers.image.revision"] = revision
    return labels


INFERRED_SPEC = "/etc/conveyor/model.yaml"
OMITTED_LISTING = "omitted.tsv"
OMITTED_IN_IMAGE = "/etc/conveyor/omitted.tsv"


def dockerfile(
    version: ModelVersion,
    base_image: str,
    labels: dict[str, str],
    inferred_spec: bool = False,
    omitted: bool = False,
    generates: bool = False,
) -> str:
    healthcheck = json.dumps(
        [
            "python3",
            "-c",
            "import sys, urllib.request; "
            f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/v2/health/ready', timeout=2).status == 200 "
            "else 1)",
        ]
    )
    entrypoint = json.dumps(
        [
            "python3",
            "-m",
            "conveyor.serving",
            "/model",
            "--host",
            "0.0.0.0",
            "--port",
            str(PORT),
            "--name",
            version.name,
            "--model-version",
            str(version.version),  # the registry's version is the served version, whatever model.yaml says
            *(["--spec", INFERRED_SPEC] if inferred_spec else []),
            "--expect-digest",
            version.digest,
            *(["--omitted-files", OMITTED_IN_IMAGE] if omitted else []),
        ]
    )
    spec_layer = (
        "\n# The spec `conveyor serve` infers for this bare ONNX version (outside /model, whose files\n"
        "# stay exactly as registered).\n"
        f"COPY spec/model.yaml {INFERRED_SPEC}\n"
        if inferred_spec
        else ""
    )
    if omitted:
        spec_layer += (
            f"\n# {ORIGINAL_FOLDER}/ (the framework's own file) is not served and stays out of the image; its\n"
            "# files' sha256 are listed, so the server still checks the whole version digest.\n"
            f"COPY {OMITTED_LISTING} {OMITTED_IN_IMAGE}\n"
        )
    system_layer = (
        "\n# 0. llama.cpp's OpenMP runtime, Debian's libgomp1: the generative engine's one system library\n"
        "#    (its wheel, built once by `make engine`, is installed below like every other).\n"
        "RUN apt-get update -qq \\\n"
        " && apt-get install -y -qq --no-install-recommends libgomp1 \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
        if generates
        else ""
    )
    label_lines = " \\\n      ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    return f"""\
# Built by conveyor {__version__} for {version.ref} (sha256:{version.digest}).
FROM {base_image}

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
{system_layer}
# 1. Dependencies: exact versions with hashes, installed offline from the wheelhouse.
#    Changes only when requirements.txt changes, so code and model changes reuse it.
COPY requirements.txt /opt/conveyor/requirements.txt
RUN --mount=type=bind,source=wheels,target=/opt/conveyor/wheels \\
    python3 -m venv /opt/venv \\
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /opt/conveyor/wheels \\
      --require-hashes -r /opt/conveyor/requirements.txt

# 2. The model, exactly as registered: its own layer, so a code change does not re-push it.
COPY model/ /model/
{spec_layer}
# 3. The SBOM of the dependencies, the model and the server (CycloneDX; its digest in a label).
COPY sbom/{SBOM_FILE} {SBOM_IN_IMAGE}

# 4. The server code.
COPY app/ /app/
ENV PYTHONPATH=/app

USER {USER_ID}:{USER_ID}
EXPOSE {PORT}
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 CMD {healthcheck}
LABEL {label_lines}
ENTRYPOINT {entrypoint}
"""


def _world_readable(folder: Path) -> None:
    for path in [folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def _copy_app(dest: Path) -> None:
    source = Path(conveyor.__file__).parent
    shutil.copytree(source, dest / "conveyor", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def write_context(
    version: ModelVersion,
    model_folder: Path,
    out: Path,
    base_image: str = DEFAULT_BASE,
    platform: str = "linux/amd64",
    title: str | None = None,
    wheel_cache: Path | None = None,
    progress: Progress | None = None,
) -> BuildContext:
    """Write the build context for ``version`` (whose verified files are in ``model_folder``) into ``out``.

    A version without ``model.yaml`` (a bare ``model.onnx``, with ``tokenizer.json`` for text) is
    packaged with the spec ``conveyor serve`` infers for it, by the same rule (``locate_model``)."""
    require("cyclonedx", extra="build", for_="conveyor package and build")  # the SBOM every build carries
    try:
        spec = inferred_spec(model_folder, version.name, str(version.version))
    except ModelLoadError as exc:
        raise ConveyorError(f"{version.ref} cannot be packaged: {exc}") from None
    has_spec = (model_folder / SPEC_FILE).is_file()
    if out.exists() and any(out.iterdir()):
        raise ConveyorError(f"{out} is not empty: choose a new folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(model_folder, out / "model", ignore=shutil.ignore_patterns(".conveyor-*"))
    omitted = [(f"{ORIGINAL_FOLDER}/{p}", sha) for p, sha in folder_pairs(out / "model" / ORIGINAL_FOLDER)]
    if omitted:
        shutil.rmtree(out / "model" / ORIGINAL_FOLDER)
        write_pairs(omitted, out / OMITTED_LISTING)
        (out / OMITTED_LISTING).chmod(0o644)
    _world_readable(out / "model")  # the image runs as an unprivileged user
    if digest_of_pairs(folder_pairs(out / "model") + omitted) != version.digest:
        raise ConveyorError(f"the files copied for {version.ref} do not match its digest")
    if progress:
        progress.start("downloading pinned wheels", 0)
    roots = image_roots([spec.task.extra] if spec.task.extra else [], platform)  # e.g. Pillow for images
    needed = closure(roots, platform)
    engine = [engine_wheel(pin, out / "wheels", platform) for pin in needed if is_engine(pin)]  # first: fail early
    downloaded = download_wheels([p for p in needed if not is_engine(p)], out / "wheels", platform, cache=wheel_cache)
    pins = sorted([*downloaded, *engine], key=lambda pin: pin.name)
    (out / "requirements.txt").write_text(requirements_text(pins))
    _copy_app(out / "app")
    _world_readable(out / "app")
    if not has_spec:
        (out / "spec").mkdir()
        (out / "spec" / SPEC_FILE).write_text(
            yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True), sort_keys=False)
        )
        _world_readable(out / "spec")
    labels = image_labels(version, title)
    labels[TASK_LABEL] = spec.task.value  # what `conveyor smoke` asks the image: /predict, or the OpenAI API
    sbom = write_sbom(version, pins, title or version.name)
    (out / "sbom").mkdir()
    (out / "sbom" / SBOM_FILE).write_text(sbom)
    _world_readable(out / "sbom")
    sbom_digest = hashlib.sha256(sbom.encode()).hexdigest()
    labels[SBOM_LABEL] = f"sha256:{sbom_digest}"
    (out / "Dockerfile").write_text(
        dockerfile(
            version,
            base_image,
            labels,
            inferred_spec=not has_spec,
            omitted=bool(omitted),
            generates=spec.task.generates,
        )
    )
    (out / ".dockerignore").write_text("**/__pycache__\n**/*.pyc\n")
    return BuildContext(out, version, base_image, labels, sbom_digest, platform)
