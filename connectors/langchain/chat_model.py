"""gatedrag's local model as a LangChain chat model that returns token log-probabilities the way
OpenAI-compatible models do.

``response_metadata["logprobs"]["content"]`` holds one entry a generated token: ``token``,
``logprob`` (natural log), ``bytes`` (its UTF-8 bytes) and ``top_logprobs`` (the ``top_logprobs``
most likely tokens at that step, each with the same fields). The prompt is the model's own chat
template (from its GGUF or tokenizer; a plain ``User:`` / ``Assistant:`` format for a model without
one). No tool calling, structured output or non-text inputs: those raise :class:`InputError`.
``stream`` yields a chunk a sentence (or ``max_tokens`` tokens), each with its tokens' logprobs;
the last carries the usage.

Example:
    >>> from gatedrag.connectors.langchain import GatedragChatModel
    >>> from helpers.scripted import ScriptedLM
    >>> chat = GatedragChatModel(lm=ScriptedLM([("Paris.", 0.9)], []), top_logprobs=0)
    >>> m = chat.invoke("Capital of France?")
    >>> m.content, m.response_metadata["logprobs"]["content"][0]["token"], m.usage_metadata["output_tokens"]
    ('Paris.', 'Paris.', 1)
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from gatedrag.config import ModelConfig
from gatedrag.errors import InputError
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.chat import (
    ChatMessage,
    Completion,
    chat_prompt,
    chat_stops,
    complete,
    gap,
    openai_logprob,
    template_of,
    text_content,
)
from gatedrag.lm.sampling import Sampling
from gatedrag.types import Sentence, TokenStep, geometric_mean_probability

_LOADED: dict[str, LanguageModel] = {}
_LOADING = threading.Lock()
_LOCKS: dict[int, threading.Lock] = {}


def _model_lock(lm: LanguageModel) -> threading.Lock:
    """One call at a time on a model (it decodes one session at a time)."""
    with _LOADING:
        return _LOCKS.setdefault(id(lm), threading.Lock())


def _messages(messages: list[BaseMessage]) -> list[ChatMessage]:
    out = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, HumanMessage):
            role = "user"
        elif isinstance(m, AIMessage):
            if m.tool_calls:
                raise InputError("this chat model calls no tools: a message with tool calls cannot be continued")
            role = "assistant"
        else:
            raise InputError(f"this chat model takes system, human and AI messages, not {type(m).__name__}")
        out.append(ChatMessage(role=role, content=text_content(m.content)))  # type: ignore[arg-type]
    return out


class GatedragChatModel(BaseChatModel):
    """A gatedrag language model (``model``: loaded once per process and config, or ``lm``
    given) as a LangChain ``BaseChatModel`` (see the module's docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: ModelConfig = Field(default_factory=ModelConfig)
    """Which model to load (default: the packaged default model)."""
    lm: Any = Field(default=None, exclude=True)
    """A loaded :class:`~gatedrag.lm.base.LanguageModel` to use instead of loading ``model``."""
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=10.0)
    """0: greedy; above: sampled (``top_p``, ``seed``)."""
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0)
    stop: list[str] | None = None
    logprobs: bool = True
    """Return each token's log-probability in ``response_metadata["logprobs"]``."""
    top_logprobs: int = Field(default=5, ge=0, le=20)
    """Alternatives a token (at most what the model keeps: its ``capabilities.top_k``)."""
    _resolved: LanguageModel | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "gatedrag"

    @property
    def language_model(self) -> LanguageModel:
        """The model that writes (loaded on first use)."""
        if self.lm is not None:
            if not isinstance(self.lm, LanguageModel):
                raise InputError(f"lm is not a gatedrag LanguageModel: {type(self.lm).__name__}")
            return self.lm
        if self._resolved is None:
            key = self.model.model_dump_json()
            with _LOADING:
                if key not in _LOADED:
                    from gatedrag.factory import build_model

                    _LOADED[key] = build_model(self.model)
                self._resolved = _LOADED[key]
        return self._resolved

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model.name, "max_tokens": self.max_tokens, "temperature": self.temperature}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        params = LangSmithParams(
            ls_provider="gatedrag",
            ls_model_name=str(
                kwargs.get("model") or (self.model.name if self.lm is None else self.language_model.name)
            ),
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
        )
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    # -- one call ---------------------------------------------------------------------------------
    def _settings(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        if "model" in kwargs:
            raise InputError("one model a GatedragChatModel: build another to use another model")
        unknown = set(kwargs) - {"max_tokens", "temperature", "top_p", "seed", "logprobs", "top_logprobs"}
        if unknown:
            raise InputError(f"unknown settings for this chat model: {sorted(unknown)}")
        s = {
            "max_tokens": kwargs.get("max_tokens", self.max_tokens),
            "temperature": kwargs.get("temperature", self.temperature),
            "top_p": kwargs.get("top_p", self.top_p),
            "seed": kwargs.get("seed", self.seed),
            "logprobs": kwargs.get("logprobs", self.logprobs),
            "top_logprobs": kwargs.get("top_logprobs", self.top_logprobs),
            "stop": list(stop if stop is not None else self.stop or []),
        }
        s["stop"] += [x for x in chat_stops(template_of(self.language_model)) if x not in s["stop"]]
        if not isinstance(s["max_tokens"], int) or s["max_tokens"] < 1:
            raise InputError(f"max_tokens must be a positive integer, got {s['max_tokens']!r}")
        if not 0 <= int(s["top_logprobs"]) <= 20:
            raise InputError("top_logprobs must be between 0 and 20")
        if any(not isinstance(x, str) for x in s["stop"]):
            raise InputError("stop must be a list of strings")
        return s

    def _prompt(self, messages: list[BaseMessage]) -> str:
        return chat_prompt(_messages(messages), template=template_of(self.language_model))

    @staticmethod
    def _sampling(s: dict[str, Any]) -> Sampling | None:
        if not s["temperature"]:
            return None
        return Sampling(temperature=s["temperature"], top_p=s["top_p"], seed=s["seed"] or 0)

    def _metadata(self, tokens: list[TokenStep], s: dict[str, Any]) -> dict[str, Any]:
        top = min(int(s["top_logprobs"]), self.language_model.capabilities.top_k)
        return {"logprobs": {"content": [openai_logprob(t, top) for t in tokens]}} if s["logprobs"] else {}

    def _usage(self, c: Completion) -> UsageMetadata:
        n = len(c.tokens)
        return UsageMetadata(input_tokens=c.prompt_tokens, output_tokens=n, total_tokens=c.prompt_tokens + n)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        s = self._settings(stop, kwargs)
        prompt, lm = self._prompt(messages), self.language_model
        with _model_lock(lm):
            c = complete(lm, [prompt], max_tokens=s["max_tokens"], stop=s["stop"], sampling=self._sampling(s))[0]
        meta = {**self._metadata(c.tokens, s), "finish_reason": c.finish_reason, "model_name": str(lm.name)}
        message = AIMessage(content=c.text, response_metadata=meta, usage_metadata=self._usage(c))
        info = {"finish_reason": c.finish_reason}
        if c.tokens:
            info["mean_logprob"] = sum(t.logprob for t in c.tokens) / len(c.tokens)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        s = self._settings(stop, kwargs)
        prompt, lm = self._prompt(messages), self.language_model
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()
        left = threading.Event()  # the consumer stopped reading: the model stops at its next piece

        def work() -> None:
            try:
                with _model_lock(lm):
                    c = complete(
                        lm,
                        [prompt],
                        max_tokens=s["max_tokens"],
                        stop=s["stop"],
                        sampling=self._sampling(s),
                        on_segment=lambda _, piece: pieces.put(("piece", piece)),
                        stopped=lambda _: left.is_set(),
                    )[0]
                pieces.put(("done", c))
            except BaseException as err:  # raised in the consumer
                pieces.put(("error", err))

        worker = threading.Thread(target=contextvars.copy_context().run, args=(work,), daemon=True)
        worker.start()
        try:
            previous: Sentence | None = None
            while True:
                kind, item = pieces.get()
                if kind == "error":
                    raise item
                if kind == "done":
                    c: Completion = item  # its text is the pieces' (complete() joins them the same way)
                    meta = {"finish_reason": c.finish_reason, "model_name": str(lm.name)}
                    last = AIMessageChunk(content="", response_metadata=meta, usage_metadata=self._usage(c))
                    yield ChatGenerationChunk(message=last, generation_info={"finish_reason": c.finish_reason})
                    break
                piece: Sentence = item
                text = gap(previous, piece) + piece.text
                previous = piece
                chunk = ChatGenerationChunk(
                    message=AIMessageChunk(content=text, response_metadata=self._metadata(piece.tokens, s))
                )
                if run_manager is not None:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            left.set()
            worker.join()


def mean_probability(message: AIMessage) -> float | None:
    """Geometric-mean token probability of a message with logprobs (``None`` without them)."""
    content = (message.response_metadata.get("logprobs") or {}).get("content") or []
    return geometric_mean_probability([e["logprob"] for e in content])


__all__ = ["GatedragChatModel", "mean_probability"]
