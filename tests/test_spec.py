"""Model specs: defaults, safe names, what a bare ONNX file is served as."""

from __future__ import annotations

import pytest

from conveyor.errors import ModelLoadError
from conveyor.serving.spec import ModelSpec, resolve_model


def test_spec_defaults_and_boolean_label() -> None:
    spec = ModelSpec(name="m")
    assert spec.labels == ["negative", "positive"]
    assert spec.boolean_label == "positive"
    assert ModelSpec(name="m", labels=["ham", "spam"]).boolean_label == "spam"
    assert ModelSpec(name="m", labels=["a", "b", "c"]).boolean_label is None


@pytest.mark.parametrize("name", ["../etc", "a/b", "", "x" * 200, "bad\nname", "-lead"])
def test_spec_rejects_unsafe_names(name: str) -> None:
    with pytest.raises(ValueError, match="model name"):
        ModelSpec(name=name)


def test_bare_onnx_without_tokenizer_is_a_tensor_model(tmp_path) -> None:
    from tests.models import doubling_model

    path = doubling_model(tmp_path / "my model.onnx")
    resolved = resolve_model(path)
    assert resolved.spec.task == "tensor"
    assert resolved.spec.name == "my-model"
    assert resolved.tokenizer_path is None


def test_bare_onnx_with_tokenizer_is_a_text_model(tmp_path) -> None:
    from tests.models import no_mask_model, word_tokenizer

    path = no_mask_model(tmp_path / "roberta.onnx")
    resolved = resolve_model(path, tokenizer=word_tokenizer(tmp_path / "tok.json"), name="roberta", version="9")
    assert resolved.spec.task == "text-classification"
    assert (resolved.spec.name, resolved.spec.version) == ("roberta", "9")


def test_missing_tokenizer_is_a_load_error(tmp_path) -> None:
    from tests.models import no_mask_model

    path = no_mask_model(tmp_path / "m.onnx")
    with pytest.raises(ModelLoadError, match="tokenizer file not found"):
        resolve_model(path, tokenizer=tmp_path / "missing.json")
