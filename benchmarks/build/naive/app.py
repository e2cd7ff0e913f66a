"""The classic hand-written model server that the naive recipe packages (see ../__main__.py)."""

import numpy as np
import onnxruntime
from flask import Flask, jsonify, request
from transformers import PreTrainedTokenizerFast

app = Flask(__name__)
tokenizer = PreTrainedTokenizerFast(tokenizer_file="/app/model/tokenizer.json")
session = onnxruntime.InferenceSession("/app/model/model.onnx", providers=["CPUExecutionProvider"])
input_names = [i.name for i in session.get_inputs()]


@app.route("/predict", methods=["POST"])
def predict():  # type: ignore[no-untyped-def]
    input_ids = np.array(tokenizer.encode(request.json[0], add_special_tokens=True))[None, :]
    inputs = {input_names[0]: input_ids}
    if len(input_names) > 1:
        inputs[input_names[1]] = np.ones_like(input_ids)
    result = np.argmax(session.run(None, inputs))
    return jsonify({"positive": bool(result)})


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=5000)
