"""Any LangChain chat model as gatedrag's language model: token signals from the log-probabilities
it returns (``response_metadata["logprobs"]["content"]``, the OpenAI convention), or none.

Example:
    >>> from gatedrag.connectors.langchain import GatedragChatModel, langchain_language_model
    >>> from helpers.scripted import ScriptedLM
    >>> chat = GatedragChatModel(lm=ScriptedLM([("Paris.", 0.9)], []))
    >>> lm = langchain_language_model(chat)               # logprobs declared: token signals computed
    >>> lm.capabilities.logprobs, lm.name
    (True, 'langchain:GatedragChatModel')
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from gatedrag.errors import BackendError, InputError
from gatedrag.lm.remote import CompletionRequest, RemoteCompletion, RemoteLanguageModel, RemoteToken

LENGTH_REASONS = {"length", "max_tokens", "MAX_TOKENS"}
"""``finish_reason`` values (across providers) that mean the token budget ran out."""


class LangChainCompleter:
    """Sends completion requests to a LangChain chat model: the prompt as a human message, the
    answer written so far as an assistant message to continue (``prefill``; otherwise appended to
    the human message), ``max_tokens`` / ``stop`` / sampling and (with ``logprobs``) ``logprobs`` and
    ``top_logprobs`` as call settings, ``settings`` added to every call. Requests of a round run
    ``max_concurrency`` at a time; a failing call raises :class:`BackendError` (the chat model's
    own ``max_retries`` apply first)."""

    def __init__(
        self,
        chat: BaseChatModel,
        *,
        logprobs: bool = True,
        prefill: bool = True,
        settings: dict[str, Any] | None = None,
        max_concurrency: int = 4,
    ):
        if not isinstance(chat, BaseChatModel):
            raise InputError(f"need a langchain BaseChatModel, got {type(chat).__name__}")
        self.chat, self.logprobs, self.prefill = chat, logprobs, prefill
        self.settings = dict(settings or {})
        self.name = f"langchain:{chat.get_name()}"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrency, thread_name_prefix="gatedrag-chat"
        )

    def messages(self, request: CompletionRequest) -> list[BaseMessage]:
        if request.answer and self.prefill:
            return [HumanMessage(request.prompt), AIMessage(request.answer)]
        return [HumanMessage(request.prompt + request.answer)]

    def _call(self, request: CompletionRequest) -> RemoteCompletion:
        kwargs: dict[str, Any] = {"max_tokens": request.max_tokens, **self.settings}
        if request.sampling is not None:
            kwargs.update(
                temperature=request.sampling.temperature, top_p=request.sampling.top_p, seed=request.sampling.seed
            )
        if self.logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.top_logprobs)
        try:
            message = self.chat.invoke(self.messages(request), stop=list(request.stop) or None, **kwargs)
        except Exception as err:
            raise BackendError(f"{self.name} failed: {type(err).__name__}: {err}") from err
        if not isinstance(message, AIMessage) or not isinstance(message.content, str):
            raise BackendError(f"{self.name} returned {type(message).__name__} content that is not text")
        meta = message.response_metadata or {}
        content = ((meta.get("logprobs") or {}).get("content")) or []
        tokens = [
            RemoteToken(
                text=str(e["token"]),
                logprob=min(0.0, float(e["logprob"])),
                top=[(str(a["token"]), min(0.0, float(a["logprob"]))) for a in e.get("top_logprobs") or []],
            )
            for e in content
        ]
        usage = message.usage_metadata or {}
        return RemoteCompletion(
            text=message.content,
            tokens=tokens,
            finish="length" if meta.get("finish_reason") in LENGTH_REASONS else "stop",
            prompt_tokens=usage.get("input_tokens"),
        )

    def complete(self, requests: Sequence[CompletionRequest]) -> list[RemoteCompletion]:
        return list(self._pool.map(self._call, requests))


def langchain_language_model(
    chat: BaseChatModel, *, logprobs: bool = True, top_k: int = 5, context_length: int = 8192, **completer: Any
) -> RemoteLanguageModel:
    """``chat`` as gatedrag's :class:`~gatedrag.lm.base.LanguageModel`. ``logprobs=False`` for a
    chat model that returns none: its token-distribution signals are then traced as unavailable
    and the gate acts on the other families (corpus statistics)."""
    return RemoteLanguageModel(
        LangChainCompleter(chat, logprobs=logprobs, **completer),
        top_k=top_k if logprobs else 0,
        logprobs=logprobs,
        context_length=context_length,
    )


__all__ = ["LangChainCompleter", "langchain_language_model"]
