"""A model behind an OpenAI-compatible completion server (vLLM, llama.cpp's server, ``gatedrag
serve``), through the official ``openai`` client: ``/v1/completions`` with ``logprobs`` (the top-k
alternatives a token), stop strings, sampling; timeouts and retries with backoff are the client's.
The API key comes from the config or the environment and is never logged or traced.

Example (against a running server)::

    from gatedrag.config import ModelConfig, OpenAIConfig
    from gatedrag.lm.openai_compat import load_openai_model
    lm = load_openai_model(ModelConfig(backend="openai", name="qwen2.5-coder-1.5b-instruct",
                                       openai=OpenAIConfig(base_url="http://127.0.0.1:8000/v1")))
"""

from __future__ import annotations

import concurrent.futures
import os
from collections.abc import Sequence
from typing import Any

from gatedrag.config import ModelConfig, OpenAIConfig
from gatedrag.errors import BackendError, ConfigError, ModelNotInstalledError
from gatedrag.lm.remote import CompletionRequest, RemoteCompletion, RemoteLanguageModel, RemoteToken


class OpenAICompleter:
    """Completion requests to ``/v1/completions`` of an OpenAI-compatible server."""

    def __init__(self, model: str, settings: OpenAIConfig, *, client: Any = None):
        self.model = model
        self.settings = settings
        base = settings.base_url or os.environ.get("OPENAI_BASE_URL")
        if client is None:
            if not base:
                raise ConfigError("model.openai.base_url is not set (nor $OPENAI_BASE_URL): give the server's URL")
            try:
                import openai
            except ImportError:
                raise ModelNotInstalledError(
                    "the openai backend needs the openai client: pip install 'gatedrag[serve]'"
                ) from None
            key = settings.api_key.get_secret_value() if settings.api_key else os.environ.get(settings.api_key_env)
            client = openai.OpenAI(
                base_url=base, api_key=key or "none", timeout=settings.timeout_s, max_retries=settings.max_retries
            )
        self.client = client
        self.name = f"{model} @ {base or 'client'}"
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=settings.concurrency, thread_name_prefix="gatedrag-openai"
        )

    def __repr__(self) -> str:  # the key stays out of every repr and log line
        return f"OpenAICompleter({self.name!r})"

    def _call(self, r: CompletionRequest) -> RemoteCompletion:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "prompt": r.prompt + r.answer,
            "max_tokens": r.max_tokens,
            "temperature": 0.0 if r.sampling is None else r.sampling.temperature,
        }
        if r.stop:
            kwargs["stop"] = list(r.stop)[:4]  # the API takes at most 4
        if r.sampling is not None:
            kwargs.update(top_p=r.sampling.top_p, seed=r.sampling.seed)
        if self.settings.logprobs:
            kwargs["logprobs"] = max(1, r.top_logprobs)
        try:
            resp = self.client.completions.create(**kwargs)
        except Exception as err:
            raise BackendError(f"{self.name} failed: {type(err).__name__}: {err}") from err
        try:
            choice = resp.choices[0]
            tokens: list[RemoteToken] = []
            lp = choice.logprobs
            if lp is not None and lp.tokens:
                tops = lp.top_logprobs or [None] * len(lp.tokens)
                for text, logprob, top in zip(lp.tokens, lp.token_logprobs or [None] * len(lp.tokens), tops):
                    alts = sorted(((t, min(0.0, float(v))) for t, v in (top or {}).items()), key=lambda a: -a[1])
                    tokens.append(
                        RemoteToken(text=text, logprob=None if logprob is None else min(0.0, float(logprob)), top=alts)
                    )
            usage = resp.usage  # optional in the API's schema
            return RemoteCompletion(
                text=choice.text or "",
                tokens=tokens,
                finish="length" if choice.finish_reason == "length" else "stop",
                prompt_tokens=usage.prompt_tokens if usage is not None else None,
            )
        except (AttributeError, IndexError, TypeError, ValueError) as err:
            raise BackendError(f"{self.name} returned a malformed completion: {type(err).__name__}: {err}") from err

    def complete(self, requests: Sequence[CompletionRequest]) -> list[RemoteCompletion]:
        return list(self._pool.map(self._call, requests))


def load_openai_model(config: ModelConfig, *, client: Any = None) -> RemoteLanguageModel:
    """The model of ``config`` (``backend: openai``) behind the model protocol."""
    s = config.openai
    return RemoteLanguageModel(
        OpenAICompleter(config.name, s, client=client),
        name=config.name,
        context_length=s.context_length,
        top_k=min(config.top_k, 20) if s.logprobs else 0,
        logprobs=s.logprobs,
    )


__all__ = ["OpenAICompleter", "load_openai_model"]
