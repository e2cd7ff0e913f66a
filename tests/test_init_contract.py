"""``conveyor init --name NAME`` records the registered version's own contract (issue 45, item 6):
NAME@production, else NAME's latest version, said in one line; the text classifier's starter
contract only where nothing is registered under NAME, said in one line too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from conveyor.cli.main import app as cli
from conveyor.convert.options import ConvertOptions
from conveyor.registration import register_path


def test_init_records_the_registered_tabular_versions_contract_not_the_sentiment_one(
    conveyor_home: Path, tmp_path: Path
) -> None:
    import joblib
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from conveyor.registry.config import open_registry

    random = np.random.default_rng(0)
    frame = pd.DataFrame({"age": random.uniform(20, 70, 200), "bills": random.normal(3, 1, 200)})
    urgent = np.where(frame.bills + random.normal(0, 0.5, 200) > 3, "urgent", "routine")
    joblib.dump(LogisticRegression().fit(frame, urgent), tmp_path / "tickets.joblib")
    registry = open_registry()
    for _ in range(2):
        register_path(registry, tmp_path / "tickets.joblib", "tickets", ConvertOptions(), report=lambda _: None)
    registry.set_alias("tickets", "production", 1)

    runner = CliRunner()  # in process; the version is served for the recording, as a user's init does
    recorded = runner.invoke(cli, ["init", str(tmp_path / "project"), "--name", "tickets"])
    assert recorded.exit_code == 0, recorded.output
    assert recorded.output.startswith("recording contract.yaml from tickets:1 (tickets@production)\n")
    contract = yaml.safe_load((tmp_path / "project" / "contract.yaml").read_text())
    assert contract["response_schema"]["required"] == ["label", "probabilities"]
    assert contract["response_schema"]["properties"]["label"]["enum"] == ["routine", "urgent"]
    assert "positive" not in str(contract)

    starter = runner.invoke(cli, ["init", str(tmp_path / "other"), "--name", "nothing-yet"])
    assert starter.exit_code == 0 and starter.output.splitlines()[0] == (
        'nothing is registered under nothing-yet: contract.yaml is the text-classification starter ({"positive": '
        "bool}); once the model is registered, `conveyor init --force` records its own"
    )
    refused = runner.invoke(cli, ["init", str(tmp_path / "third"), "--name", "nothing-yet", "--task",
                                  "tabular-classification"])  # fmt: skip
    assert refused.exit_code == 4, refused.output
    assert "nothing is registered under nothing-yet: register the model first" in refused.output
