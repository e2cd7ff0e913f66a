"""A custom MLServer runtime for the MiniLM model, as MLServer users write one (MLServer has no ONNX runtime).

One BYTES input of sentences in, one BYTES output of labels out, in the V2 protocol.  MLServer's
adaptive batching (``max_batch_size`` and ``max_batch_time`` in ``model-settings.json``) joins
concurrent requests along the first dimension before ``predict`` and splits the answer after it.
"""

from __future__ import annotations

from minilm import MiniLM
from mlserver import MLModel
from mlserver.codecs import StringCodec
from mlserver.types import InferenceRequest, InferenceResponse


class MiniLMRuntime(MLModel):
    async def load(self) -> bool:
        self.model = MiniLM()
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        texts = StringCodec.decode_input(payload.inputs[0])
        labels = self.model.classify(texts)
        return InferenceResponse(
            model_name=self.name,
            outputs=[StringCodec.encode_output("label", labels)],
        )
