"""A faithful re-creation of the classic Flask sentiment app, as the baseline.

Pure-Python (slow) transformers tokenizer, a default onnxruntime session, one
sentence per request, ``np.argmax``, ``jsonify({"positive": bool(result)})``,
Flask's development server.  Only the model file differs: the model under
test instead of roberta-sequence-classification-9.onnx, and its attention
mask (all ones, as there is no padding) where the model takes one.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnxruntime
from flask import Flask, jsonify, request
from transformers import BertTokenizer


def create_app(model_path: Path, vocab_path: Path) -> Flask:
    app = Flask(__name__)
    tokenizer = BertTokenizer(str(vocab_path))
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    input_names = [i.name for i in session.get_inputs()]

    @app.route("/predict", methods=["POST"])
    def predict():  # type: ignore[no-untyped-def]
        input_ids = np.array(tokenizer.encode(request.json[0], add_special_tokens=True))[None, :]
        inputs = {input_names[0]: input_ids}
        if len(input_names) > 1:
            inputs[input_names[1]] = np.ones_like(input_ids)
        out = session.run(None, inputs)
        result = np.argmax(out)
        return jsonify({"positive": bool(result)})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--vocab", type=Path, required=True)
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args()
    create_app(args.model, args.vocab).run(host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
