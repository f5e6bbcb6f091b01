"""Backends that return only the top-k log-probabilities, and the entropy estimated from them.

OpenAI-compatible servers (vLLM, llama.cpp, hosted APIs) return the chosen token's
log-probability and at most 20 alternatives, never the full distribution. Token signals that read
probabilities (FLARE, TokenRAG, G-NLL) are exact from that; the entropy is not.
:func:`topk_entropy` estimates it as the entropy of the k known probabilities plus their
remaining mass ``r = 1 - sum p_i`` spread over tokens no more likely than the k-th:
``H ~= -sum_i p_i log p_i - r log p_k``. This is a lower bound of the full entropy given what the
top-k shows (the tail's entropy is smallest when its mass sits on as few tokens as possible) and
exact when the tail is empty.

:class:`TopKLanguageModel` wraps any backend and lets through only that: the top-k alternatives,
the chosen token's log-probability, the estimated entropy; no attention, no twins. Running the
whole pipeline on it shows what a hosted backend would do (``ModelConfig(backend="topk", top_k=20)``).

Example:
    >>> import math
    >>> from gatedrag.lm.topk import topk_entropy
    >>> round(topk_entropy([math.log(0.5), math.log(0.5)]), 4)  # nothing left in the tail: exact
    0.6931
    >>> round(topk_entropy([math.log(0.5), math.log(0.25)]), 4)  # 0.25 left: at least one more token of 0.25
    1.0397
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from gatedrag.errors import InputError
from gatedrag.lm.base import DecodeSession, LanguageModel, ModelCapabilities, NextToken, SentenceHook, Twin
from gatedrag.types import DecodeOutcome, Sentence, TokenStep


def topk_entropy(top_logprobs: Sequence[float]) -> float:
    """Entropy (nats) estimated from the ``k`` largest log-probabilities of a distribution (see the
    module doc): ``-sum p log p`` over them plus ``-r log p_k`` for the remaining mass ``r``."""
    probs = sorted((math.exp(lp) for lp in top_logprobs), reverse=True)
    if not probs:
        return 0.0
    known = -sum(p * math.log(p) for p in probs if p > 0)
    rest = max(0.0, 1.0 - sum(probs))
    smallest = probs[-1]
    return known + (-rest * math.log(smallest) if rest > 1e-12 and smallest > 0 else 0.0)


def only_top_k(step: TokenStep, k: int) -> TokenStep:
    """What a top-``k`` backend shows of a token step: its log-probability, ``k`` alternatives and
    the entropy estimated from them (no confidence gain: no twin)."""
    top = step.top[:k]
    return TokenStep(
        token_id=step.token_id,
        text=step.text,
        logprob=step.logprob,
        entropy=topk_entropy([a.logprob for a in top]),
        top=top,
    )


def _only(sentence: Sentence, k: int) -> Sentence:
    return Sentence(text=sentence.text, tokens=[only_top_k(t, k) for t in sentence.tokens], final=sentence.final)


class TopKSession:
    """A session of :class:`TopKLanguageModel`: the inner session's sentences, top-k only."""

    def __init__(self, inner: DecodeSession, k: int):
        self.inner, self.k = inner, k

    def start(
        self,
        key: Hashable,
        prompt: str,
        *,
        cached_prefix: str = "",
        continuation: Sequence[Sentence] = (),
        twin: Twin | None = None,
    ) -> int:
        if twin is not None:
            raise InputError("a top-k backend decodes no twins (its capabilities say twins=False)")
        return self.inner.start(key, prompt, cached_prefix=cached_prefix, continuation=continuation)

    def decode(
        self, keys: Sequence[Hashable], *, on_sentence: SentenceHook, budgets: Mapping[Hashable, int], **kw: Any
    ) -> dict[Hashable, DecodeOutcome]:
        shown: dict[int, Sentence] = {}  # each sentence reduced once: the hook's copy is the outcome's

        def reduced(s: Sentence) -> Sentence:
            if id(s) not in shown:
                shown[id(s)] = _only(s, self.k)
            return shown[id(s)]

        outcomes = self.inner.decode(
            keys, on_sentence=lambda key, s: on_sentence(key, reduced(s)), budgets=budgets, **kw
        )
        return {
            key: out.model_copy(update={"sentences": [reduced(s) for s in out.sentences]})
            for key, out in outcomes.items()
        }

    def close(self, key: Hashable) -> None:
        self.inner.close(key)


class TopKLanguageModel:
    """Any backend seen through its top-``k`` log-probabilities only (see the module doc). The
    inner model must keep at least ``k`` alternatives per step."""

    def __init__(self, inner: LanguageModel, k: int = 20):
        if not 1 <= k <= inner.capabilities.top_k:
            raise InputError(f"top-k must be in 1..{inner.capabilities.top_k} (what the inner model keeps), got {k}")
        self.inner, self.k = inner, k
        self.name = f"{inner.name} (top-{k} log-probabilities)"
        self.context_length = inner.context_length
        self.capabilities = ModelCapabilities(
            full_entropy=False, top_k=k, attention=False, twins=False, kv_cache=inner.capabilities.kv_cache
        )

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def chat_template(self) -> str | None:
        from gatedrag.lm.chat import template_of

        return template_of(self.inner)

    def open_session(self) -> TopKSession:
        return TopKSession(self.inner.open_session(), self.k)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        return [[only_top_k(t, self.k) for t in row] for row in self.inner.score(prompts, continuations)]

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        out = []
        for d in self.inner.next_token(prompts):
            top = d.top[: self.k]
            out.append(NextToken(entropy=topk_entropy([a.logprob for a in top]), top=top))
        return out


__all__ = ["TopKLanguageModel", "TopKSession", "only_top_k", "topk_entropy"]
