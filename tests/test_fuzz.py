"""Fuzzing as a standing test: schemathesis against the OpenAPI documents the servers serve.

Each run is bounded in time; it asserts that no generated request gets a 5xx, that every
schema-valid request is taken (``positive_data_acceptance``), that answers match the documented
status codes, content types and schemas, and (where the protocol is not lenient by design) that
schema-violating requests are refused.  Traffic goes to 127.0.0.1 only (see ``fuzz_hooks``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.registry.config import open_local
from tests.conftest import REPO, Server, free_port, start_server
from tests.journeys.conftest import Spawned, wait_http
from tests.registry_fixtures import RegistryServer, run_cli

ST = Path(sys.executable).parent / "st"
# Bounded (fixed seed): at most 25 cases per operation and 20 s per run, to fit the suite; a longer
# run (--max-time 90) found the registry's Allow headers listing one route's methods, now fixed.
# A run once found the registry taking {"protect": 0} for false (its bodies are strict now).
EXAMPLES, SECONDS = "25", "20"
# 413 (too large) is a refusal too; schemathesis's default list leaves it out.
REFUSALS = '["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]'


def fuzz(schema_url: str, config: str, tmp_path: Path, *args: str) -> None:
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(f"[checks.negative_data_rejection]\nexpected-statuses = {REFUSALS}\n\n{config}")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "PYTHONPATH": str(REPO)}
    command = [str(ST), "--config-file", str(config_file), "run", schema_url, "--checks", "all", "--no-color"]
    # One worker: hypothesis parses lambdas' source with ast from every worker thread, and
    # CPython 3.11.7's ast is not thread-safe ("AST constructor recursion depth mismatch").
    bounds = ["--max-examples", EXAMPLES, "--max-time", SECONDS, "--workers", "1", "--seed", "20261201"]
    result = subprocess.run(
        [*command, *bounds, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    summary = result.stdout[result.stdout.find("SUMMARY") :]
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert ("generated" in summary and "No issues found" in summary) or " passed" in summary, summary


@pytest.fixture(scope="module")
def model_server(vote_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The vote model with the default limits (1 MB bodies: more than the fuzzer's requests ever reach)."""
    server = start_server(vote_model, tmp_path=tmp_path_factory.mktemp("fuzzed-server"))
    yield server
    server.stop()


def test_the_model_server_holds_against_its_openapi(model_server: Server, tmp_path: Path) -> None:
    parameters = '[parameters]\n"path.name" = "votes"\n"path.version" = "1"\n'
    # v2 takes all the protocol allows (shapes [N] and [N, 1], nested data, unknown fields), more
    # than its document describes: every check but "schema-violating requests are refused" there,
    fuzz(f"{model_server.url}/openapi.json", parameters, tmp_path, "--exclude-checks", "negative_data_rejection")
    # and every check on the classic route, which is exactly as strict as its document.
    fuzz(f"{model_server.url}/openapi.json", parameters, tmp_path, "--include-path", "/predict")


@pytest.fixture(scope="module")
def tabular_server(tabular, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    """A converted scikit-learn Pipeline (numbers and strings): its document is generated from its features."""
    from conveyor.convert import ConvertOptions, convert_model

    folder = tmp_path_factory.mktemp("fuzzed-tabular") / "risk"
    convert_model(tabular.risk, folder, "risk", ConvertOptions(sample=tabular.risk_sample, positive_label="high"))
    server = start_server(folder, tmp_path=folder.parent)
    yield server
    server.stop()


def test_a_tabular_model_server_holds_against_the_document_of_its_features(
    tabular_server: Server, tmp_path: Path
) -> None:
    parameters = '[parameters]\n"path.name" = "risk"\n"path.version" = "1"\n'
    # /predict is exactly as strict as its document; v2 takes the columns in any order, the
    # document lists them in the model's order (so every check but negative_data_rejection there).
    fuzz(f"{tabular_server.url}/openapi.json", parameters, tmp_path, "--include-path", "/predict")
    fuzz(f"{tabular_server.url}/openapi.json", parameters, tmp_path, "--exclude-checks", "negative_data_rejection")


@pytest.fixture
def registry_with_a_model(
    tmp_path: Path, vote_model: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    home = tmp_path / "registry-home"
    monkeypatch.setenv("CONVEYOR_HOME", str(home))
    open_local().register(vote_model, "votes", aliases=["production"])
    token = run_cli("registry", "token", "create", "fuzz", "--scope", "write", check=True).stdout.strip()
    server = RegistryServer(home)
    try:
        yield server.url, token
    finally:
        server.stop()


def test_the_registry_server_holds_against_its_openapi(registry_with_a_model: tuple[str, str], tmp_path: Path) -> None:
    url, token = registry_with_a_model
    fuzz(
        f"{url}/openapi.json",
        '[parameters]\n"path.name" = "votes"\n"path.version" = "1"\n"path.alias" = "production"\n',
        tmp_path,
        "--header",
        f"Authorization: Bearer {token}",
    )


@pytest.fixture
def router(tmp_path: Path, model_server: Server) -> Iterator[Spawned]:
    port = free_port()
    log_path = tmp_path / "router.log"
    env = {**os.environ, "CONVEYOR_HOME": str(tmp_path / "home")}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor",
                "router",
                "--port",
                str(port),
                "--stable",
                model_server.url,
                "--log-level",
                "warning",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    spawned = Spawned(process, log_path, f"http://127.0.0.1:{port}")
    wait_http(spawned, "/_conveyor/health")
    yield spawned
    spawned.stop()


def test_the_router_admin_api_holds_against_its_openapi(router: Spawned, tmp_path: Path) -> None:
    token = (tmp_path / "home" / "rollouts" / "default" / "router.token").read_text()  # stored for local tools
    fuzz(f"{router.url}/_conveyor/openapi.json", "", tmp_path, "--header", f"Authorization: Bearer {token}")
    assert "Traceback" not in router.log()
