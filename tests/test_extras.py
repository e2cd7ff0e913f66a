"""Optional dependencies: a missing extra is one line naming it and the pip command, exit 2."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest
import typer

from conveyor.cli.output import EXIT_USAGE, exit_code, handle_errors
from conveyor.errors import MissingExtra
from conveyor.extras import install_command, needs, require
from tests.conftest import REPO


def test_require_imports_what_is_there() -> None:
    assert require("json", extra="monitor", for_="anything").dumps([1]) == "[1]"


def test_a_missing_module_names_the_extra_and_the_command() -> None:
    with pytest.raises(MissingExtra) as caught:
        require("conveyor_no_such_module.sub", extra="monitor", for_="conveyor monitor")
    assert str(caught.value) == (
        "conveyor monitor needs the 'monitor' extra (conveyor_no_such_module is not installed): "
        "pip install 'conveyor-ml[monitor]'"
    )
    assert exit_code(caught.value) == EXIT_USAGE


def test_the_torch_hint_installs_the_cpu_build_not_the_multi_gb_cuda_one() -> None:
    for extra in ("torch", "huggingface"):
        with pytest.raises(MissingExtra) as caught:
            require("conveyor_no_such_module", extra=extra, for_="converting this model")
        assert str(caught.value).endswith(
            f"pip install 'conveyor-ml[{extra}]' --extra-index-url https://download.pytorch.org/whl/cpu"
        )
    assert "download.pytorch.org" not in install_command("sklearn")


def test_imports_in_a_needs_block_name_their_extra() -> None:
    expected = r"^the drift report needs the 's3' extra \(absent_lib is not installed\)"
    with pytest.raises(MissingExtra, match=expected), needs("s3", "the drift report"):
        import absent_lib  # type: ignore[import-not-found]  # noqa: F401


def test_the_cli_prints_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exited, handle_errors():
        require("absent_lib", extra="ui", for_="conveyor ui")
    assert exited.value.exit_code == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        "error: conveyor ui needs the 'ui' extra (absent_lib is not installed): pip install 'conveyor-ml[ui]'"
    ]


def _named_extras() -> dict[str, str]:
    """Every extra the source names in require(..., extra=X) or needs(X, ...), with where."""
    named: dict[str, str] = {}
    for path in (REPO / "src" / "conveyor").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id == "require":
                values = [k.value for k in node.keywords if k.arg == "extra"]
            elif node.func.id == "needs":
                values = node.args[:1]
            else:
                continue
            for value in values:
                if isinstance(value, ast.Constant):
                    named[value.value] = f"{path.relative_to(REPO)}:{node.lineno}"
    return named


def test_every_extra_the_code_names_is_declared_and_all_holds_the_features() -> None:
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    named = _named_extras()
    assert {"monitor", "s3", "postgres", "supply-chain", "build", "optimize", "lint"} <= set(named)
    assert {extra: where for extra, where in named.items() if extra not in extras} == {}
    features = set(named) - {"sklearn", "xgboost", "lightgbm", "torch", "huggingface", "mlflow", "kfp"}
    features -= {"generative"}  # its engine is a source distribution: [all] would compile llama.cpp (make engine)
    (everything,) = extras["all"]
    assert set(everything.removeprefix("conveyor-ml[").removesuffix("]").split(",")) >= features


def test_dev_installs_every_extra_so_the_lock_pins_them() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["dev"]
    assert "conveyor-ml[all]" in dev and "conveyor-ml[frameworks]" in dev
    assert Path(REPO / "requirements.lock").read_text().count("\nscipy==") == 1
