"""Tabular classification and regression: named, typed columns in (``serving/tabular.py`` checks
them against the spec's features); labels with probabilities, or values, out.

v2 takes one named input per column, as MLServer's pandas codec sends them, and answers
``label``/``probabilities`` (also under scikit-learn's names ``predict``/``predict_proba``)
or ``value``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conveyor.serving import tabular
from conveyor.serving.body import json_body
from conveyor.serving.tabular import TabularModel
from conveyor.serving.tasks import RunAlone, Scores, Submit, TaskServer
from conveyor.serving.v2 import DecodedRequest


class TabularServer(TaskServer):
    model: TabularModel

    @property
    def classifier(self) -> bool:
        return not self.spec.task.regression

    def load(self) -> None:
        self.model = TabularModel(self.resolved, self.options.runtime)
        self.model.score_columns(self.model.warm_up_columns())

    @property
    def session(self) -> Any:
        return self.model.session

    def score(self, items: list[Any]) -> Scores:
        return self.model.score(items)

    def parse_predict(self, body: bytes, content_type: str | None) -> list[Any]:
        self.check_content_type(content_type)
        payload = json_body(body, 'JSON records, e.g. [{"column": 1.5}]')
        return tabular.rows_of(tabular.parse_rows(payload, self.spec, self.options.max_items))

    def answers(self, scores: Scores) -> list[dict[str, Any]]:
        return tabular.answers(self.spec, scores)

    async def infer(self, request: DecodedRequest, submit: Submit, run_alone: RunAlone) -> dict[str, np.ndarray]:
        columns = tabular.columns_from_tensors(self.spec, request.tensors, self.options.max_items)
        scores = await submit(tabular.rows_of(columns))  # batched with /predict's rows
        if not self.classifier:
            values = scores[:, 0]
            return self.pick(request.requested, ["value"], {"value": lambda: values, "predict": lambda: values})
        outputs = self.label_outputs(scores)
        outputs.update(predict=outputs["label"], predict_proba=outputs["probabilities"])  # scikit-learn's names
        return self.pick(request.requested, ["label", "probabilities"], outputs)

    def metadata(self) -> dict[str, Any]:
        inputs = [{"name": f.name, "datatype": tabular.v2_datatype(f), "shape": [-1, 1]} for f in self.spec.features]
        if not self.classifier:
            return {
                "inputs": inputs,
                "outputs": [{"name": "value", "datatype": "FP64", "shape": [-1]}],
                "parameters": {"task": self.spec.task, "features": self._features()},
            }
        return {
            "inputs": inputs,
            "outputs": self.label_metadata(),
            "parameters": {"labels": self.spec.labels, "task": self.spec.task, "features": self._features()},
        }

    def _features(self) -> list[dict[str, Any]]:
        """The schema, with the categories seen in training: what a client (and ``verify``) builds rows from."""
        return [f.model_dump(exclude_none=True) for f in self.spec.features]
