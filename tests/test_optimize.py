"""conveyor models optimize: variants made, gated on agreement, measured, registered with lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import helper

from conveyor.errors import InvalidInput
from conveyor.optimize import speed
from conveyor.optimize.agreement import compare
from conveyor.optimize.run import GateRefused, evaluation_texts, optimize
from conveyor.optimize.speed import throughput
from conveyor.registry.config import open_local
from tests import models
from tests.registry_fixtures import run_cli
from tests.tabular_models import Trained

WORDS = models.VOCAB[2:]


def sentences(count: int, seed: int = 3) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) for _ in range(count)]


def inverted(source: Path, dest: Path) -> Path:
    """The same model answering the opposite: its logits negated (a deliberately broken variant)."""
    model = onnx.load(source)
    graph = model.graph
    out = graph.output[0].name
    for node in graph.node:
        node.output[:] = [f"{name}_raw" if name == out else name for name in node.output]
    graph.node.append(helper.make_node("Neg", [f"{out}_raw"], [out]))
    onnx.save(model, dest)
    return dest


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return models.model_dir(tmp_path_factory.mktemp("optimize") / "bert", "bert", models.tiny_bert_model)


def test_evaluation_texts_come_from_golden_examples_and_files(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "split.json").write_text(json.dumps({"texts": ["b", "c"], "labels": [0, 1]}))
    (tmp_path / "lines.txt").write_text("d\n\ne\n")
    files = [tmp_path / "list.json", tmp_path / "split.json", tmp_path / "lines.txt"]
    assert evaluation_texts([["g1", "a"]], files) == ["g1", "a", "b", "c", "d", "e"]
    (tmp_path / "bad.json").write_text(json.dumps({"texts": "not a list"}))
    with pytest.raises(InvalidInput, match="expected a JSON list"):
        evaluation_texts([], [tmp_path / "bad.json"])
    with pytest.raises(InvalidInput, match="does not exist"):
        evaluation_texts([], [tmp_path / "missing.json"])


def test_agreement_counts_labels_and_the_largest_probability_difference(bert_folder: Path, tmp_path: Path) -> None:
    texts = sentences(40)
    same = compare(bert_folder, bert_folder, texts)
    assert (same.compared, same.agreed, same.max_probability_diff) == (40, 40, 0.0)
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in bert_folder.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    inverted(bert_folder / "model.onnx", broken / "model.onnx")
    flipped = compare(bert_folder, broken, texts)
    assert flipped.agreed < 40 and flipped.disagreements
    assert {"input", "original", "variant"} == set(flipped.disagreements[0])


def test_an_int8_variant_that_agrees_is_registered_with_its_lineage(conveyor_home: Path, bert_folder: Path) -> None:
    registry = open_local()
    original = registry.register(bert_folder, "bert", lineage=None)
    outcome = optimize(registry, "bert:1", sentences(60), methods=["int8"], min_agreement=0.9, measure=False)
    assert outcome.chosen is not None and outcome.chosen.method == "int8"
    assert outcome.registered is not None and outcome.registered.ref == "bert:2"
    version = registry.resolve("bert:2")
    assert version.lineage.optimized_from == "bert:1"
    assert version.properties["optimization"] == "int8"
    assert json.loads(version.properties["optimization_params"])["per_channel"] is True
    assert version.lineage.metrics["agreement"] >= 0.9
    assert version.digest != original.digest
    sizes = {f.path: f.size for f in version.files}
    assert sizes["model.onnx"] < {f.path: f.size for f in original.files}["model.onnx"]  # int8 weights


def test_optimizing_a_version_again_returns_its_variant_instead_of_a_duplicate(
    conveyor_home: Path, bert_folder: Path, tmp_path: Path
) -> None:
    open_local().register(bert_folder, "bert")
    texts = tmp_path / "eval.json"
    texts.write_text(json.dumps(sentences(40)))
    args = ("models", "optimize", "bert:1", "--method", "int8", "--eval", str(texts), "--min-agreement", "0.9")
    first = run_cli(*args, "--no-measure", "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["registered"] == "bert:2", first.stderr
    again = run_cli(*args, "--alias", "fast")
    assert again.returncode == 0, again.stderr
    assert "bert:2 is already the int8 variant of bert:1" in again.stdout and "nothing made" in again.stdout
    registry = open_local()
    assert [v.version for v in registry.list_versions("bert")] == [1, 2]
    assert registry.resolve("bert@fast").version == 2  # the alias asked for still moves
    # another method is another variant; --again makes a new one of the same method
    other = run_cli(*args[:4], "graph", *args[5:], "--no-measure", "--json")
    assert json.loads(other.stdout)["registered"] == "bert:3", other.stderr
    forced = run_cli(*args, "--no-measure", "--again", "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["registered"] == "bert:4", forced.stderr


def test_a_broken_variant_is_refused_with_the_texts_that_disagree(
    conveyor_home: Path, bert_folder: Path, tmp_path: Path
) -> None:
    open_local().register(bert_folder, "bert")
    broken = inverted(bert_folder / "model.onnx", tmp_path / "broken.onnx")
    texts = tmp_path / "eval.json"
    texts.write_text(json.dumps(sentences(40)))
    refused = run_cli("models", "optimize", "bert:1", "--variant", str(broken), "--eval", str(texts), "--no-measure")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused: no variant agrees with bert:1 on 99% of the inputs (given " in refused.stdout
    assert "given: '" in refused.stdout and "-> " in refused.stdout  # the disagreeing texts, shown
    assert [v.version for v in open_local().list_versions("bert")] == [1]  # nothing registered

    # beside a variant that agrees, the broken one is reported refused and the good one registered
    result = run_cli(
        "models", "optimize", "bert:1", "--method", "graph", "--variant", str(broken), "--eval", str(texts),
        "--no-measure", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    given = next(c for c in report["candidates"] if c["method"] == "given")
    assert not given["passed"] and given["agreement"] < 0.99 and given["disagreements"]
    assert report["chosen"] == "graph" and report["registered"] == "bert:2"


def test_no_evaluation_texts_and_unknown_methods_are_clear_errors(
    conveyor_home: Path, bert_folder: Path, tmp_path: Path
) -> None:
    open_local().register(bert_folder, "bert")
    result = run_cli("models", "optimize", "bert:1")
    assert result.returncode == 2 and "no evaluation inputs" in result.stderr
    (tmp_path / "eval.txt").write_text("good day\n")
    result = run_cli("models", "optimize", "bert:1", "--method", "fp4", "--eval", str(tmp_path / "eval.txt"))
    assert result.returncode == 2 and "unknown optimization" in result.stderr


def test_throughput_is_measured_for_every_model_in_one_run(bert_folder: Path) -> None:
    speeds = throughput({"a": bert_folder, "b": bert_folder}, sentences(8), rounds=2, seconds=0.2)
    assert set(speeds) == {"a", "b"} and all(value > 0 for value in speeds.values())


def test_the_optimize_step_registers_the_variant_in_a_pipeline(
    conveyor_home: Path, bert_folder: Path, tmp_path: Path
) -> None:
    open_local().register(bert_folder, "bert")
    project = tmp_path / "project"
    project.mkdir()
    (project / "held-out.json").write_text(json.dumps({"texts": sentences(50)}))
    pipeline = {
        "steps": {
            "optimize": {
                "uses": "optimize",
                "with": {
                    "ref": "bert:1",
                    "eval": "held-out.json",
                    "methods": ["int8"],
                    "min_agreement": 0.9,
                    "measure": False,
                },
            }
        }
    }
    (project / "conveyor.yaml").write_text(yaml.safe_dump({"pipelines": {"fast": pipeline}}))
    result = run_cli("pipeline", "run", "fast", "--file", str(project / "conveyor.yaml"), "--json")
    step = json.loads(result.stdout)["steps"]["optimize"]
    assert result.returncode == 0 and step["status"] == "success", step["message"]
    assert step["outputs"]["ref"] == "bert:2" and step["outputs"]["method"] == "int8"
    assert open_local().resolve("bert:2").lineage.optimized_from == "bert:1"
    # run again (no step cache here): the variant it made is the output, nothing new registered
    result = run_cli("pipeline", "run", "fast", "--file", str(project / "conveyor.yaml"), "--json")
    step = json.loads(result.stdout)["steps"]["optimize"]
    assert result.returncode == 0 and step["outputs"]["ref"] == "bert:2" and step["outputs"]["existing"] is True
    assert step["outputs"]["agreement"] >= 0.9
    assert [v.version for v in open_local().list_versions("bert")] == [1, 2]


def test_a_bare_onnx_version_is_optimized_through_the_same_file_the_server_loads(
    conveyor_home: Path, bert_folder: Path, tmp_path: Path
) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "encoder.onnx").write_bytes((bert_folder / "model.onnx").read_bytes())
    (bare / "tokenizer.json").write_bytes((bert_folder / "tokenizer.json").read_bytes())
    registry = open_local()
    registry.register(bare, "bare")
    outcome = optimize(registry, "bare:1", sentences(40), methods=["int8"], min_agreement=0.9, measure=False)
    assert outcome.registered is not None
    files = {f.path: f.size for f in registry.resolve("bare:2").files}
    assert set(files) == {"encoder.onnx", "tokenizer.json"}  # the model replaced in place, nothing added
    assert files["encoder.onnx"] < (bare / "encoder.onnx").stat().st_size


def test_methods_that_do_not_apply_are_skipped_with_a_reason_and_the_rest_still_run(
    conveyor_home: Path, tmp_path: Path
) -> None:
    """A model with no attention blocks and no text to calibrate on: fusion and smoothing say why, int8 still ships."""
    folder = models.model_dir(tmp_path / "vote", "vote", models.word_vote_model)
    open_local().register(folder, "vote")
    texts = tmp_path / "eval.json"
    texts.write_text(json.dumps(sentences(40)))
    result = run_cli("models", "optimize", "vote:1", "--eval", str(texts), "--no-measure", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert set(report["skipped"]) == {"fused-int8-smooth", "int8-smooth", "fused"}
    assert all(isinstance(reason, str) and reason for reason in report["skipped"].values())
    assert report["chosen"] == "int8" and report["registered"] == "vote:2"
    table = run_cli("models", "optimize", "vote:2", "--eval", str(texts), "--no-measure")
    assert "Traceback" not in table.stdout + table.stderr
    assert "skipped" in table.stdout


def _tabular_version(model_file: Path, sample: Path, name: str, out: Path) -> list[dict[str, object]]:
    """``model_file`` converted and registered as ``name:1``; the sample's first rows as records to compare on."""
    import pandas as pd

    from conveyor.convert.kinds import convert_model
    from conveyor.convert.options import ConvertOptions

    convert_model(model_file, out, name, ConvertOptions(sample=sample))
    open_local().register(out, name)
    return pd.read_csv(sample).head(40).to_dict(orient="records")  # type: ignore[no-any-return]


def test_tree_models_get_a_one_line_reason_per_method_and_a_refusal_not_a_traceback(
    conveyor_home: Path, tabular: Trained, tmp_path: Path
) -> None:
    """XGBoost: the quantizer refuses its graph ("ai.onnx domain"); a RandomForest: int8 leaves the graph as it was."""
    import joblib
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    frame = pd.read_csv(tabular.cancer_sample)
    forest = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0))
    forest.fit(frame, frame["mean area"] > 600)
    joblib.dump(forest, tmp_path / "forest.joblib")
    for name, model_file in (("cancer", tabular.cancer_xgb), ("forest", tmp_path / "forest.joblib")):
        records = _tabular_version(model_file, tabular.cancer_sample, name, tmp_path / name)
        with pytest.raises(GateRefused, match=rf"^no method makes a variant of {name}:1") as refused:
            optimize(open_local(), f"{name}:1", records, methods=["int8", "graph"])
        skipped = refused.value.outcome.skipped
        assert set(skipped) == {"int8", "graph"}
        assert all("\n" not in why and len(why) < 300 for why in skipped.values()), skipped
        assert [v.version for v in open_local().list_versions(name)] == [1]
    assert skipped["graph"] == "the graph did not change (2 nodes, the same weights)"
    shown = run_cli("models", "optimize", "cancer:1", "--eval", str(tabular.cancer_sample), "--method", "int8")
    assert shown.returncode == 1 and "Traceback" not in shown.stdout + shown.stderr
    assert "refused: no method makes a variant of cancer:1 (int8: int8 does not apply" in shown.stdout
    assert "variants of cancer:1" not in shown.stdout  # no empty table of candidates


def test_int8_of_a_graph_without_weights_to_quantize_is_no_variant(tmp_path: Path) -> None:
    """An Add of a constant: the quantizer writes the same graph back, which make_variant refuses to call a variant."""
    from conveyor.optimize.variants import NotApplicable, make_variant

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "bias"], ["y"])],
        "plain",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor("bias", onnx.TensorProto.FLOAT, [3], [1.0, 2.0, 3.0])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "plain.onnx")
    with pytest.raises(NotApplicable, match=r"^the graph did not change \(1 nodes, the same weights\)$"):
        make_variant("int8", tmp_path / "plain.onnx", tmp_path / "out" / "plain.onnx")


def test_a_variant_no_faster_than_noise_is_not_registered_and_its_interval_is_shown(
    conveyor_home: Path, tabular: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original's own graph offered as a variant, faster in most rounds but not in every one: noise, not registered.

    The rounds are fixed (a busy machine can make an identical graph look faster in every short round;
    the machine's load is no test input): the decision and the interval it prints are what is tested.
    """
    rounds = {"original": [100.0, 100.0, 100.0, 100.0, 100.0], "given": [108.0, 104.0, 97.0, 110.0, 106.0]}
    monkeypatch.setattr(speed, "measure", lambda folders, inputs: {name: rounds[name] for name in folders})
    records = _tabular_version(tabular.cancer_xgb, tabular.cancer_sample, "cancer", tmp_path / "cancer")
    with pytest.raises(
        GateRefused,
        match=r"^no variant that agrees is faster than cancer:1 beyond the measured noise "
        r"\(100 inputs/s; given 1\.06x \(rounds 0\.97-1\.10x\);",
    ):
        optimize(open_local(), "cancer:1", records, variant=tmp_path / "cancer" / "model.onnx")
    assert [v.version for v in open_local().list_versions("cancer")] == [1]


def test_a_variant_faster_in_every_round_is_registered_with_its_speedup_and_range(
    conveyor_home: Path, bert_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decision on measured rounds (the timer replaced by fixed rounds: this machine's load is no test input)."""
    rounds = {"original": [100.0, 120.0, 100.0], "int8": [150.0, 168.0, 160.0]}
    monkeypatch.setattr(speed, "measure", lambda folders, inputs: {name: rounds[name] for name in folders})
    open_local().register(bert_folder, "bert")
    outcome = optimize(open_local(), "bert:1", sentences(40), methods=["int8"], min_agreement=0.9)
    assert outcome.registered is not None and outcome.speedup == 1.5
    metrics = outcome.registered.lineage.metrics
    assert (metrics["speedup_in_process"], metrics["speedup_in_process_low"], metrics["speedup_in_process_high"]) == (
        1.5,
        1.4,
        1.6,
    )
    assert outcome.as_dict()["candidates"][0]["speedup_interval"] == [1.4, 1.6]


def test_a_speedup_counts_only_when_every_round_is_faster() -> None:
    assert not speed.speedup([100, 100, 100], [150, 140, 99]).beyond_noise  # one round slower: noise
    assert not speed.speedup([100, 100], [101, 101.5]).beyond_noise  # within the margin
    found = speed.speedup([100, 200, 100], [150, 300, 120])
    assert found.beyond_noise and (found.ratio, found.low, found.high) == (1.5, 1.2, 1.5)
    assert str(found) == "1.50x (rounds 1.20-1.50x)"
