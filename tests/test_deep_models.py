"""PyTorch and Hugging Face models from their frameworks: converted, gated, registered, served (issue 27).

A real CNN trained on scikit-learn's digits (TorchScript and torch.export) becomes an
image-classification model answering PNG and base64 images as the original does; a
transformers folder becomes a text classifier on the reference model's serving path.
Files that cannot be converted honestly (a fixed batch, a state dict) are refused with the fix."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml

from tests.conftest import start_server
from tests.deep_models import Built, digit_png, digits
from tests.registry_fixtures import run_cli

DIGIT_LABELS = "zero,one,two,three,four,five,six,seven,eight,nine"


def _torch_answers(model_file: Path, indices: list[int]) -> np.ndarray:
    """The original model's probabilities for data-set digits, after the PNG round trip of their pixels."""
    import torch

    images, _ = digits()
    pixels = np.round(images[indices] * 255) / 255  # what a PNG of the digit holds
    program = (
        torch.export.load(str(model_file)).module() if model_file.suffix == ".pt2" else torch.jit.load(str(model_file))
    )
    with torch.no_grad():
        return torch.softmax(program(torch.from_numpy(pixels.astype(np.float32))), dim=1).numpy()


@pytest.mark.parametrize("kind", ["export", "script"])
def test_a_pytorch_file_is_converted_gated_and_registered_as_an_image_classifier(
    kind: str, deep: Built, conveyor_home: Path, tmp_path: Path
) -> None:
    model_file = deep.digits_export if kind == "export" else deep.digits_script
    args = ["models", "register", str(model_file), "--name", "digits", "--labels", DIGIT_LABELS, "--json"]
    if kind == "script":
        args += ["--input-shape", "1,8,8"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate passed" in result.stderr and "image-classification, 1x8x8 images, 10 labels" in result.stderr
    assert "torchvision" not in result.stderr  # the exporter's noise is not the user's business
    version = json.loads(result.stdout)
    assert version["framework"] == "pytorch"
    assert version["lineage"]["metrics"]["conversion_label_agreement"] == 1.0
    assert version["lineage"]["metrics"]["conversion_max_difference"] <= 1e-4
    assert {f["path"] for f in version["files"]} == {"model.onnx", "model.yaml", f"original/{model_file.name}"}
    run_cli("models", "download", "digits:1", "-o", str(tmp_path / "dl"), check=True)
    spec = yaml.safe_load((tmp_path / "dl" / "model.yaml").read_text())
    assert spec["task"] == "image-classification" and spec["labels"][3] == "three"
    assert spec["image"]["width"] == 8 and spec["image"]["channels"] == 1
    assert spec["source"]["converter"] == f"torch.onnx ({'torch.export' if kind == 'export' else 'torchscript'})"


@pytest.mark.parametrize(
    ("file", "extra", "named"),
    [
        ("digits_static", [], "fixes the batch size to 1"),
        ("digits_state", ["--input-shape", "1,8,8"], "not a TorchScript file"),
        ("digits_script", [], "pass --input-shape C,H,W"),
        ("digits_export", ["--labels", "a,b"], "--labels names 2 classes, the model answers 10"),
        ("digits_export", ["--input-shape", "1,x"], "--input-shape"),
    ],
)
def test_a_pytorch_file_that_cannot_be_served_honestly_is_refused_with_the_fix(
    file: str, extra: list[str], named: str, deep: Built, conveyor_home: Path
) -> None:
    result = run_cli("models", "register", str(getattr(deep, file)), "--name", "digits", *extra)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert "digits" not in run_cli("models", "list", "--json", check=True).stdout


def test_a_conversion_that_answers_differently_is_refused_with_its_inputs(deep: Built, tmp_path: Path) -> None:
    """The classic mistake: exported without ``model.eval()``, its dropout still drops in the original."""
    import torch

    from conveyor.convert import ConvertOptions, convert_model
    from conveyor.convert.gate import ConversionRefused
    from tests.deep_models import digits_cnn

    trained = digits_cnn()
    trained.load_state_dict(torch.load(str(deep.digits_state)))
    forgot_eval = torch.nn.Sequential(trained, torch.nn.Dropout(0.5)).train()
    example = torch.from_numpy(digits()[0][:2])
    program = torch.export.export(forgot_eval, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, str(tmp_path / "forgot-eval.pt2"))
    with pytest.raises(ConversionRefused, match=r"largest difference") as refused:
        convert_model(tmp_path / "forgot-eval.pt2", tmp_path / "out", "digits", ConvertOptions())
    assert "\n  row 0 input 0" in str(refused.value) or "\n  row " in str(refused.value)
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def served_digits(deep: Built, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from conveyor.convert import ConvertOptions, convert_model

    folder = tmp_path_factory.mktemp("digits") / "digits"
    convert_model(deep.digits_export, folder, "digits", ConvertOptions(labels=DIGIT_LABELS.split(",")))
    server = start_server(folder, tmp_path=folder.parent)
    yield server
    server.stop()


def test_png_bytes_and_base64_json_answer_the_original_models_labels(served_digits, deep: Built) -> None:  # type: ignore[no-untyped-def]
    names = DIGIT_LABELS.split(",")
    indices = list(range(10, 20))
    expected = _torch_answers(deep.digits_export, indices)
    url = served_digits.url + "/predict"
    for row, index in enumerate(indices):
        got = httpx.post(url, content=digit_png(index), headers={"content-type": "image/png"}, timeout=10)
        assert got.status_code == 200, got.text
        answer = got.json()
        assert answer["label"] == names[int(expected[row].argmax())]
        assert abs(answer["score"] - float(expected[row].max())) < 1e-4
        assert len(answer["top"]) == 5 and answer["top"][0]["label"] == answer["label"]
    encoded = [base64.b64encode(digit_png(i)).decode() for i in indices]
    for body in (encoded, [{"b64": e} for e in encoded], {"instances": [{"b64": e} for e in encoded]}):
        got = httpx.post(url, json=body, timeout=10)
        assert got.status_code == 200, got.text
        assert [a["label"] for a in got.json()] == [names[int(p.argmax())] for p in expected]
    _, target = digits()
    assert sum(names.index(a["label"]) == target[i] for a, i in zip(got.json(), indices, strict=True)) >= 9


def test_v2_takes_base64_images_or_the_graphs_own_tensor(served_digits, deep: Built) -> None:  # type: ignore[no-untyped-def]
    images, _ = digits()
    indices = [10, 11, 12]
    encoded = [base64.b64encode(digit_png(i)).decode() for i in indices]
    url = served_digits.url + "/v2/models/digits/infer"
    by_bytes = httpx.post(
        url, json={"inputs": [{"name": "image", "datatype": "BYTES", "shape": [3], "data": encoded}]}, timeout=10
    )
    assert by_bytes.status_code == 200, by_bytes.text
    misnamed = {"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3], "data": encoded}]}
    refused = httpx.post(url, json=misnamed, timeout=10)  # only the inputs the metadata names
    assert refused.status_code == 400 and "BYTES input 'image'" in refused.json()["error"]
    pixels = (np.round(images[indices] * 255) / 255).astype(np.float32)
    tensor = {"name": "input", "datatype": "FP32", "shape": list(pixels.shape), "data": pixels.reshape(-1).tolist()}
    by_tensor = httpx.post(url, json={"inputs": [tensor]}, timeout=10)
    assert by_tensor.status_code == 200, by_tensor.text
    outputs = [{o["name"]: o for o in r.json()["outputs"]} for r in (by_bytes, by_tensor)]
    assert outputs[0]["label"]["data"] == outputs[1]["label"]["data"]
    assert np.allclose(outputs[0]["probabilities"]["data"], outputs[1]["probabilities"]["data"], atol=1e-5)
    meta = httpx.get(served_digits.url + "/v2/models/digits", timeout=10).json()
    assert meta["parameters"]["task"] == "image-classification" and meta["inputs"][1]["shape"] == [-1, 1, 8, 8]


def _gif() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("content", "content_type", "status", "named"),
    [
        (b"not an image", "image/png", 422, "not a PNG or JPEG image"),
        (digit_png(3)[:40], "image/png", 422, "the image"),
        (_gif(), "image/png", 422, "a GIF image; send PNG or JPEG"),
        (b"", "image/jpeg", 400, "request body is empty"),
        (b'["%%%"]', "application/json", 422, "item 0: not base64"),
        (b"[12]", "application/json", 422, "item 0: expected a base64 string"),
        (b"[]", "application/json", 422, "no images given"),
        (b"hello", "text/plain", 415, "image/png, image/jpeg or application/json"),
    ],
)
def test_a_bad_image_is_a_4xx_naming_the_problem(
    served_digits, content: bytes, content_type: str, status: int, named: str
) -> None:  # type: ignore[no-untyped-def]
    got = httpx.post(
        served_digits.url + "/predict", content=content, headers={"content-type": content_type}, timeout=10
    )
    assert got.status_code == status, got.text
    assert named in got.json()["error"]
    assert httpx.get(served_digits.url + "/v2/health/ready", timeout=5).status_code == 200


def test_a_transformers_folder_is_converted_and_served_on_the_text_path(
    deep: Built, conveyor_home: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts = tmp_path / "texts.txt"
    texts.write_text("a wonderful film\nthe plot was dull and slow\nok\n" + "word " * 200 + "\n")
    result = run_cli("models", "register", str(deep.sentiment_hf), "--name", "hf", "--sample", str(texts), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gate passed: 4 rows (texts.txt)" in result.stderr
    assert "Loading weights" not in result.stderr
    version = json.loads(result.stdout)
    assert version["framework"] == "transformers"
    paths = {f["path"] for f in version["files"]}
    assert {"model.onnx", "model.yaml", "tokenizer.json", "original/sentiment-hf/config.json"} <= paths
    server = start_server("hf:1", tmp_path=tmp_path)
    try:
        sentences = ["a wonderful film", "the plot was dull and slow", "fine"]
        got = httpx.post(server.url + "/predict", json=sentences, timeout=10)
        assert got.status_code == 200, got.text
        model = AutoModelForSequenceClassification.from_pretrained(str(deep.sentiment_hf)).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(deep.sentiment_hf))
        with torch.no_grad():
            logits = model(**tokenizer(sentences, padding=True, return_tensors="pt")).logits
        assert got.json() == [{"positive": bool(w == 1)} for w in logits.argmax(1).tolist()]
    finally:
        server.stop()


def test_a_transformers_folder_without_a_fast_tokenizer_is_refused(
    deep: Built, conveyor_home: Path, tmp_path: Path
) -> None:
    import shutil

    folder = tmp_path / "no-tokenizer"
    shutil.copytree(deep.sentiment_hf, folder)
    (folder / "tokenizer.json").unlink()
    result = run_cli("models", "register", str(folder), "--name", "hf")
    assert result.returncode != 0 and "has no tokenizer.json" in result.stderr, result.stderr


def test_the_python_api_converts_a_module_with_an_example(deep: Built, tmp_path: Path) -> None:
    import torch

    from conveyor.convert import convert_module
    from tests.deep_models import digits_cnn

    module = digits_cnn()
    module.load_state_dict(torch.load(str(deep.digits_state)))  # the training code's own module, trained
    images, _ = digits()
    conversion = convert_module(
        module, torch.from_numpy(images[:1]), tmp_path / "api", "api", labels=list("0123456789")
    )
    assert conversion.report.passed and conversion.spec.task == "image-classification"
    assert (tmp_path / "api" / "model.onnx").is_file() and (tmp_path / "api" / "original" / "api.pt2").is_file()


def test_verify_checks_an_image_model_with_a_contract_made_for_its_task(served_digits) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("verify", served_digits.url, "--json")
    report = json.loads(result.stdout)
    statuses = {c["id"]: c for c in report["checks"]}
    assert result.returncode == 0, [c for c in report["checks"] if c["status"] == "failed"]
    assert statuses["response.schema"]["status"] == "passed" and '"top"' in statuses["response.schema"]["message"]
    assert statuses["v2.infer"]["status"] == "passed"
    bad = [i for i in statuses if i.startswith("errors.")]
    assert {"errors.not-base64", "errors.not-an-image", "errors.wrong-content-type"} <= set(bad)
    assert all(statuses[i]["status"] == "passed" for i in bad)


def test_a_refused_module_conversion_leaves_no_folder_behind(deep: Built, tmp_path: Path) -> None:
    import torch

    from conveyor.convert import convert_module
    from conveyor.errors import InvalidInput
    from tests.deep_models import digits_cnn

    module = digits_cnn()
    module.load_state_dict(torch.load(str(deep.digits_state)))
    images, _ = digits()
    with pytest.raises(InvalidInput, match="--labels names 2 classes"):
        convert_module(module, torch.from_numpy(images[:2]), tmp_path / "api", "api", labels=["a", "b"])
    assert not (tmp_path / "api").exists()


def test_optimize_gates_an_int8_image_variant_on_images(deep: Built, conveyor_home: Path, tmp_path: Path) -> None:
    run_cli("models", "register", str(deep.digits_export), "--name", "digits", "--labels", DIGIT_LABELS, check=True)
    images = tmp_path / "digits"
    images.mkdir()
    for i in range(30):
        (images / f"{i:02d}.png").write_bytes(digit_png(i))
    result = run_cli("models", "optimize", "digits:1", "--eval", str(images), "--method", "int8", "--method",
                     "int8-smooth", "--min-agreement", "0.9", "--no-measure", "--dry-run", "--json")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    outcome = json.loads(result.stdout)
    (int8,) = outcome["candidates"]
    assert int8["method"] == "int8" and int8["compared"] == 30 and int8["agreement"] >= 0.9
    assert "text model" in outcome["skipped"]["int8-smooth"]  # calibration tokenizes texts: said, not crashed


def test_tritonclient_sends_png_bytes_as_binary_data_and_gets_the_same_labels(served_digits) -> None:  # type: ignore[no-untyped-def]
    """The documented way: raw PNG bytes in a BYTES input with ``binary_data=True`` (not UTF-8: no 500)."""
    import tritonclient.http as triton

    indices = [10, 11, 12]
    client = triton.InferenceServerClient(served_digits.url.removeprefix("http://"))
    pngs = np.array([digit_png(i) for i in indices], dtype=np.object_)
    image = triton.InferInput("image", [len(indices)], "BYTES")
    image.set_data_from_numpy(pngs, binary_data=True)
    result = client.infer("digits", [image], outputs=[triton.InferRequestedOutput("label", binary_data=True)])
    labels = [v.decode() for v in result.as_numpy("label").tolist()]
    encoded = [base64.b64encode(digit_png(i)).decode() for i in indices]
    by_json = httpx.post(served_digits.url + "/predict", json=encoded, timeout=10).json()
    assert labels == [a["label"] for a in by_json]
    junk = np.array([b"\xff\xfe not an image"], dtype=np.object_)
    image = triton.InferInput("image", [1], "BYTES")
    image.set_data_from_numpy(junk, binary_data=True)
    with pytest.raises(triton.InferenceServerException) as refused:
        client.infer("digits", [image])
    assert refused.value.status() == "422" and "input 'image' item 0" in refused.value.message()
