"""llama.cpp running a GGUF version: a pool of slots, each its own context over the same weights.

A slot is one ``llama_cpp.Llama`` (the weights are memory-mapped, so the slots share them in the page
cache); a request waits for a free slot (the queue time), generates on it token by token in a worker
thread (ctypes releases the GIL, so slots run in parallel), and hands it back when it ends, however it
ends: a client that closes its stream stops the generation at the next token and frees its slot.
Prompts are rendered with the version's chat template (the GGUF file's, or the generation config's),
its system prompt first.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from conveyor.errors import InvalidParameter, ModelLoadError
from conveyor.extras import needs
from conveyor.generative.config import GenerationConfig

DEFAULT_CONTEXT = 4096  # tokens per slot when the model allows more (memory grows with it)


@dataclass
class Generation:
    """One request's generation, every parameter resolved (the request's, else the version's defaults)."""

    tokens: list[int]
    max_tokens: int
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    schema: dict[str, Any] | None = None


@dataclass
class Piece:
    """A piece of an answer as it is generated; the last one has its finish reason."""

    text: str
    finish: str | None = None


class Slots:
    """The free slots, taken one per request in arrival order (the queue time) and always handed back."""

    def __init__(self, contexts: list[Any]) -> None:
        self._free: asyncio.Queue[Any] = asyncio.Queue()
        for llama in contexts:
            self._free.put_nowait(llama)

    @property
    def free(self) -> int:
        return self._free.qsize()

    @asynccontextmanager
    async def take(self) -> AsyncIterator[tuple[Any, float]]:
        """A free slot and the seconds waited for it; handed back when the block ends."""
        began = time.perf_counter()
        llama = await self._free.get()
        try:
            yield llama, time.perf_counter() - began
        finally:
            self._free.put_nowait(llama)


class Engine:
    """The slots of one served version and what renders its prompts."""

    def __init__(
        self,
        model_path: Path,
        config: GenerationConfig,
        *,
        slots: int = 1,
        context_size: int | None = None,
        trained_context: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.model_path = model_path
        self.config = config
        self.slots = slots
        self.context_size = context_size or min(trained_context or DEFAULT_CONTEXT, DEFAULT_CONTEXT)
        self.threads = threads or max(1, (os.cpu_count() or 1) // slots)
        self._all: list[Any] = []
        self._formatter: Any = None

    def load(self) -> None:
        """Load every slot and generate one token on each (runs off the event loop, before ready)."""
        # ggml's OpenMP threads spin while they wait for work by default: on cores shared with other
        # processes (or other slots) a spinning thread starves the one doing the work (measured here on
        # 2 busy cores: 20 tokens took 80 s spinning, 2 s passive). Set before the library loads.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        with needs("generative", "serving a GGUF model"):
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        for _ in range(self.slots):
            try:
                llama = Llama(
                    model_path=str(self.model_path),
                    n_ctx=self.context_size,
                    n_threads=self.threads,
                    n_threads_batch=self.threads,
                    verbose=False,
                )
            except (ValueError, RuntimeError) as exc:
                raise ModelLoadError(f"{self.model_path.name}: llama.cpp could not load it: {exc}") from exc
            llama.create_completion(llama.tokenize(b"Hello"), max_tokens=1, temperature=0)  # warm up
            self._all.append(llama)
        first = self._all[0]
        template = self.config.chat_template or first.metadata.get("tokenizer.chat_template")
        if template:

            def token_text(token: int) -> str:
                return first.detokenize([token], special=True).decode(errors="ignore") if token >= 0 else ""

            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=token_text(first.token_eos()),
                bos_token=token_text(first.token_bos()),
                add_generation_prompt=True,
            )

    @property
    def loaded(self) -> bool:
        return bool(self._all)

    def start(self) -> Slots:
        """The loaded slots, offered to requests through a queue of the running event loop."""
        return Slots(self._all)

    def close(self) -> None:
        for llama in self._all:
            llama.close()
        self._all.clear()

    # prompts ------------------------------------------------------------------------------------

    def chat_tokens(self, messages: list[dict[str, str]]) -> tuple[list[int], list[str]]:
        """The prompt's tokens for a chat (the version's system prompt first) and the template's stops."""
        if self._formatter is None:
            raise InvalidParameter(
                "this model has no chat template: use /v1/completions, or register a generation config with "
                "chat_template",
                "messages",
            )
        if self.config.system_prompt:
            messages = [{"role": "system", "content": self.config.system_prompt}, *messages]
        rendered = self._formatter(messages=messages)
        stops = [rendered.stop] if isinstance(rendered.stop, str) else list(rendered.stop or [])
        tokens = self._all[0].tokenize(rendered.prompt.encode(), add_bos=not rendered.added_special, special=True)
        return tokens, [stop for stop in stops if stop]

    def text_tokens(self, text: str) -> list[int]:
        return list(self._all[0].tokenize(text.encode(), add_bos=True, special=False))

    def count_tokens(self, text: str) -> int:
        return len(self._all[0].tokenize(text.encode(), add_bos=False, special=True)) if text else 0

    def check_fits(self, tokens: list[int], wanted: int) -> int:
        """The tokens an answer may have: ``wanted``, within what the context leaves after the prompt."""
        room = self.context_size - len(tokens)
        if room < 1:
            raise InvalidParameter(
                f"This model's maximum context length is {self.context_size} tokens; the prompt has {len(tokens)}. "
                "Shorten the messages.",
                "messages",
                "context_length_exceeded",
            )
        return min(wanted, room)

    def grammar(self, schema: dict[str, Any]) -> Any:
        """llama.cpp's grammar constraining an answer to JSON that follows ``schema``."""
        from llama_cpp import LlamaGrammar

        try:
            return LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
        except Exception as exc:  # the converter raises what it meets: a schema it cannot turn into a grammar
            raise InvalidParameter(
                f"the JSON schema cannot be turned into a grammar: {exc}", "response_format.json_schema.schema"
            ) from None

    # generation ---------------------------------------------------------------------------------

    async def generate(self, llama: Any, generation: Generation) -> AsyncGenerator[Piece, None]:
        """The answer's pieces, each generated in a worker thread; closing this iterator stops the generation."""
        grammar = self.grammar(generation.schema) if generation.schema is not None else None
        iterator = llama.create_completion(
            generation.tokens,
            max_tokens=generation.max_tokens,
            temperature=generation.temperature,
            top_p=generation.top_p,
            top_k=generation.top_k,
            repeat_penalty=generation.repeat_penalty,
            presence_penalty=generation.presence_penalty,
            frequency_penalty=generation.frequency_penalty,
            seed=generation.seed,
            stop=generation.stop or None,
            grammar=grammar,
            stream=True,
        )
        try:
            while (chunk := await anyio.to_thread.run_sync(next, iterator, None)) is not None:
                choice = chunk["choices"][0]
                yield Piece(choice["text"], choice["finish_reason"])
        finally:
            with anyio.CancelScope(shield=True):  # a cancelled stream still ends its generation before the slot frees
                await anyio.to_thread.run_sync(iterator.close)
