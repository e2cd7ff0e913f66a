"""The tasks a model version can have, and what each one means everywhere it is served and watched.

A task is persisted as a string (``task:`` in model.yaml, the v2 metadata's ``parameters.task``,
the registry's copy of the spec), and those strings are this enum's values, unchanged.  What used
to be a string compared in each module (is it text? tabular? a regressor? has it inputs a person
can read?) is a property here, so serving, monitoring, verification and ``conveyor init`` ask the
same question the same way, and a new task is added in this one table.  How a task is *served*
(decoding inputs, encoding answers) stays with its ``TaskServer`` in ``serving/tasks/``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class Task(StrEnum):
    """What a model does; its value is the string written in model.yaml and answered in v2 metadata."""

    TEXT_CLASSIFICATION = "text-classification"
    TABULAR_CLASSIFICATION = "tabular-classification"
    TABULAR_REGRESSION = "tabular-regression"
    IMAGE_CLASSIFICATION = "image-classification"
    TENSOR = "tensor"  # a bare ONNX graph: raw tensors over v2, nothing decoded or named
    TEXT_GENERATION = "text-generation"  # a GGUF model answering the OpenAI API (conveyor/generative)
    TEXT_EMBEDDING = "text-embedding"  # an ONNX sentence encoder answering OpenAI's /v1/embeddings

    @classmethod
    def of(cls, value: object) -> Task | None:
        """The task another party named (a server's v2 metadata, a CLI option); None if this version knows none."""
        return next((task for task in cls if task.value == value), None)

    @property
    def takes_text(self) -> bool:
        """Inputs are texts, turned into tensors by the version's tokenizer."""
        return self is Task.TEXT_CLASSIFICATION

    @property
    def tabular(self) -> bool:
        """Inputs are records of named, typed columns (the spec's ``features``)."""
        return self in (Task.TABULAR_CLASSIFICATION, Task.TABULAR_REGRESSION)

    @property
    def generates(self) -> bool:
        """Answers are generated text (a GGUF model and its generation config), served OpenAI-compatible by
        ``conveyor.generative``, not ``/predict`` and v2."""
        return self is Task.TEXT_GENERATION

    @property
    def embeds(self) -> bool:
        """Answers are embeddings of texts (an ONNX encoder and its tokenizer), served as OpenAI's
        ``/v1/embeddings`` by ``conveyor.generative.embedding_app``, not ``/predict`` and v2."""
        return self is Task.TEXT_EMBEDDING

    @property
    def openai_api(self) -> bool:
        """Served with the OpenAI API (generation or embeddings) instead of ``/predict`` and v2."""
        return self.generates or self.embeds

    @property
    def tokenized(self) -> bool:
        """Inputs are texts the version's own ``tokenizer.json`` turns into token ids."""
        return self.takes_text or self.embeds

    @property
    def takes_images(self) -> bool:
        return self is Task.IMAGE_CLASSIFICATION

    @property
    def extra(self) -> str | None:
        """The conveyor-ml extra serving this task needs beyond the core; its image installs it too."""
        if self.generates:
            return "generative"  # llama.cpp's engine
        return "images" if self.takes_images else None  # Pillow decodes PNG and JPEG

    @property
    def regression(self) -> bool:
        """Answers a number (``{"value": ...}``), has no labels; judged by error, not accuracy."""
        return self is Task.TABULAR_REGRESSION

    @property
    def named_inputs(self) -> bool:
        """Inputs a person can read and a profile can describe: monitored for drift, recorded into contracts."""
        return self not in (Task.TENSOR, Task.TEXT_GENERATION, Task.TEXT_EMBEDDING)  # prompts: not yet profiled

    @property
    def row_inputs(self) -> bool:
        """An item fits one CSV row (a ``text`` column, or the features): labelled files, challenges."""
        return self.takes_text or self.tabular

    @property
    def answer_field(self) -> Literal["label", "value"]:
        """The name of the true answer in feedback, labelled exports and challenge files."""
        return "value" if self.regression else "label"
