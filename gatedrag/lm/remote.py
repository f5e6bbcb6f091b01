"""A language model behind a remote completion API (an OpenAI-compatible server, a LangChain chat
model), driven through the same protocol as the local backends.

A :class:`Completer` turns :class:`CompletionRequest`\\ s (a prompt, the answer written so far, a
token budget, stop strings, sampling) into :class:`RemoteCompletion`\\ s: the text and, when the API
returns them, each token's log-probability and top alternatives. :class:`RemoteLanguageModel`
decodes rows in rounds: one request a row and round (sent together), the returned tokens pushed
through the backend-neutral sentence cutter, a row continued from its text so far until the
sentence hook stops it, its budget is spent or the API ends the text. Token ids are assigned per
model to the token texts it has seen (the API's own ids are not exposed). Entropies are estimated
from the top-k (:func:`~gatedrag.lm.topk.topk_entropy`, a lower bound). A completer without
log-probabilities yields word pieces with none: ``capabilities.logprobs`` is ``False``, so every
token-distribution signal is traced as unavailable and the gate acts on the other families. No
attention, no twins, no KV cache, no scoring (P(True) and uncertainty re-ranking degrade).

Example:
    >>> from gatedrag.lm.remote import RemoteCompletion, RemoteLanguageModel, RemoteToken
    >>> class Echo:
    ...     name = "echo"
    ...     def complete(self, requests):
    ...         return [RemoteCompletion(text="Paris. It is big.", finish="stop",
    ...                 tokens=[RemoteToken(text=t, logprob=-0.1) for t in ["Paris", ".", " It", " is", " big", "."]])
    ...                 for r in requests]
    >>> lm = RemoteLanguageModel(Echo())
    >>> s = lm.open_session(); _ = s.start("q", "Q: capital of France?\\nA:")
    >>> out = s.decode(["q"], on_sentence=lambda k, sent: "continue", budgets={"q": 20})
    >>> [x.text for x in out["q"].sentences], out["q"].finish
    (['Paris.', 'It is big.'], 'eos')
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.errors import BackendError, InputError
from gatedrag.lm.base import ModelCapabilities, NextToken, SentenceHook
from gatedrag.lm.cutter import RowStream, SentenceCutter
from gatedrag.lm.sampling import Sampling
from gatedrag.lm.topk import topk_entropy
from gatedrag.types import DecodeOutcome, Sentence, TokenAlternative, TokenStep


class CompletionRequest(BaseModel):
    """One completion call: ``prompt`` then ``answer`` (what was written so far, continued)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    prompt: str
    answer: str = ""
    max_tokens: int = Field(ge=1)
    stop: tuple[str, ...] = ()
    sampling: Sampling | None = None
    top_logprobs: int = Field(default=5, ge=0, le=20)


class RemoteToken(BaseModel):
    """A generated token: its text, log-probability (``None``: the API returned none) and the
    most likely alternatives at its step (text, log-probability)."""

    model_config = ConfigDict(extra="forbid")
    text: str
    logprob: float | None = Field(default=None, le=0.0)
    top: list[tuple[str, float]] = Field(default_factory=list)


class RemoteCompletion(BaseModel):
    """What the API wrote: its ``text``, its ``tokens`` (empty when it returns no token
    breakdown), why it stopped (``stop``: end of text or a stop string; ``length``: the budget)."""

    model_config = ConfigDict(extra="forbid")
    text: str
    tokens: list[RemoteToken] = Field(default_factory=list)
    finish: Literal["stop", "length"]
    prompt_tokens: int | None = None


@runtime_checkable
class Completer(Protocol):
    """Sends completion requests to a remote model (several together where it can)."""

    name: str

    def complete(self, requests: Sequence[CompletionRequest]) -> list[RemoteCompletion]:
        """One completion per request, in order; raises :class:`~gatedrag.errors.BackendError`
        when the API fails after its retries."""
        ...


_END = -1
"""The end-of-text id pushed when the API ends a row's text (never a token text's id)."""

_PIECES = re.compile(r"\s*\S+|\s+$")


def word_pieces(text: str) -> list[RemoteToken]:
    """``text`` as tokens without log-probabilities: each word with the whitespace before it."""
    return [RemoteToken(text=p) for p in _PIECES.findall(text)]


class RemoteLanguageModel:
    """A :class:`Completer` behind the :class:`~gatedrag.lm.base.LanguageModel` protocol (see the
    module doc). ``logprobs``: the completer returns token log-probabilities (declared, not
    guessed: a completion without them then raises :class:`BackendError`). ``count_tokens``: the
    model's tokenizer if known (default: about four characters a token). ``chunk_tokens``: tokens
    asked for a request (a sentence rarely needs more; what follows a sentence the gate acts on is
    discarded)."""

    def __init__(
        self,
        completer: Completer,
        *,
        name: str | None = None,
        context_length: int = 8192,
        top_k: int = 5,
        logprobs: bool = True,
        count_tokens: Callable[[str], int] | None = None,
        chunk_tokens: int = 48,
    ):
        if not isinstance(completer, Completer):
            raise InputError(f"not a completer: {type(completer).__name__}")
        if not 0 <= top_k <= 20:
            raise InputError("top_k must be between 0 and 20 (what OpenAI-compatible APIs return)")
        self.completer = completer
        self.name = name or completer.name
        self.context_length = context_length
        self.top_k = top_k
        self.chunk_tokens = chunk_tokens
        self.capabilities = ModelCapabilities(
            full_entropy=False,
            top_k=top_k if logprobs else 0,
            attention=False,
            twins=False,
            kv_cache=False,
            logprobs=logprobs,
        )
        self._count = count_tokens
        self._vocab: dict[str, int] = {}
        self._texts: list[str] = []
        self._lock = threading.Lock()

    # -- token ids for texts --------------------------------------------------------------------
    def token_id(self, text: str) -> int:
        """A stable id for a token text (assigned on first sight)."""
        with self._lock:
            if text not in self._vocab:
                self._vocab[text] = len(self._texts)
                self._texts.append(text)
            return self._vocab[text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(self._texts[i] for i in ids)

    def count_tokens(self, text: str) -> int:
        return self._count(text) if self._count is not None else max(1, math.ceil(len(text) / 4)) if text else 0

    # -- the protocol ---------------------------------------------------------------------------
    def open_session(self) -> RemoteSession:
        return RemoteSession(self)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        raise BackendError(f"{self.name} scores no continuations (a remote completion API generates only)")

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        if not self.capabilities.logprobs:
            raise BackendError(f"{self.name} returns no log-probabilities")
        done = self.completer.complete(
            [CompletionRequest(prompt=p, max_tokens=1, top_logprobs=self.top_k) for p in prompts]
        )
        out = []
        for c in done:
            tok = c.tokens[0] if c.tokens else None
            top = tok.top if tok is not None else []
            alts = [TokenAlternative(token_id=self.token_id(t), text=t, logprob=min(0.0, lp)) for t, lp in top]
            out.append(NextToken(entropy=topk_entropy([a.logprob for a in alts]) if alts else 0.0, top=alts))
        return out

    def steps(self, completion: RemoteCompletion) -> list[TokenStep]:
        """The completion's tokens as token steps (word pieces without log-probabilities)."""
        tokens = completion.tokens
        known = self.capabilities.logprobs
        if not known:
            tokens = tokens or word_pieces(completion.text)
        elif not tokens or any(t.logprob is None for t in tokens):
            if completion.text:
                raise BackendError(f"{self.name} returned no token log-probabilities although it declares them")
            return []
        out = []
        for t in tokens:
            alts = [
                TokenAlternative(token_id=self.token_id(a), text=a, logprob=min(0.0, lp))
                for a, lp in t.top[: self.top_k]
            ]
            logprob = min(0.0, t.logprob) if known and t.logprob is not None else 0.0
            entropy = topk_entropy([a.logprob for a in alts]) if alts else 0.0
            out.append(
                TokenStep(token_id=self.token_id(t.text), text=t.text, logprob=logprob, entropy=entropy, top=alts)
            )
        return out


class RemoteSession:
    """Rows decoded through a remote API (see :class:`RemoteLanguageModel`)."""

    def __init__(self, lm: RemoteLanguageModel):
        self.lm = lm
        self.rows: dict[Hashable, tuple[str, str]] = {}  # key -> (prompt, answer so far)

    def start(
        self,
        key: Hashable,
        prompt: str,
        *,
        cached_prefix: str = "",
        continuation: Sequence[Sentence] = (),
        twin: Any = None,
    ) -> int:
        if twin is not None:
            raise InputError("a remote model decodes no twins (its capabilities say twins=False)")
        answer = self.lm.decode([t.token_id for s in continuation for t in s.tokens])
        self.rows[key] = (prompt, answer)
        return self.lm.count_tokens(prompt + answer)

    def decode(
        self,
        keys: Sequence[Hashable],
        *,
        on_sentence: SentenceHook,
        budgets: Mapping[Hashable, int],
        max_sentence_tokens: int = 64,
        stop_strings: Sequence[str] = (),
        regroup: bool = True,
        streamer: Any = None,
        split_sentences: bool = True,
        sampling: Sampling | None = None,
    ) -> dict[Hashable, DecodeOutcome]:
        keys = list(keys)
        streams = [RowStream() for _ in keys]
        cutter = SentenceCutter(
            self.lm.decode,
            keys,
            streams,
            on_sentence=on_sentence,
            budgets=budgets,
            eos_ids={_END},
            max_sentence_tokens=max_sentence_tokens,
            stop_strings=stop_strings,
            regroup=regroup,
            split_sentences=split_sentences,
        )
        written = {k: "" for k in keys}
        prompt_tokens = {k: self.lm.count_tokens("".join(self.rows[k])) for k in keys}
        while live := [i for i, row in enumerate(cutter.rows) if not row.done]:
            requests = []
            for i in live:
                row, (prompt, answer) = cutter.rows[i], self.rows[keys[i]]
                left = row.budget - row.generated
                requests.append(
                    CompletionRequest(
                        prompt=prompt,
                        answer=answer + written[keys[i]],
                        max_tokens=max(1, min(left, max(self.lm.chunk_tokens, max_sentence_tokens))),
                        stop=tuple(s for s in stop_strings if s),
                        sampling=None if sampling is None else sampling.model_copy(update={"seed": sampling.seed + i}),
                        top_logprobs=self.lm.top_k,
                    )
                )
            completions = self.lm.completer.complete(requests)
            if len(completions) != len(requests):
                raise BackendError(f"{self.lm.name} answered {len(completions)} of {len(requests)} requests")
            for i, completion in zip(live, completions):
                row = cutter.rows[i]
                for step in self.lm.steps(completion):
                    if row.done:
                        break
                    cutter.push(i, step.token_id, logprob=step.logprob, entropy=step.entropy, top=step.top)
                    written[keys[i]] += step.text
                if not row.done and (completion.finish == "stop" or not completion.text):
                    cutter.push(i, _END)  # the API ended the text
        out = {}
        for k, row in zip(keys, cutter.rows):
            out[k] = DecodeOutcome(
                sentences=row.sentences,
                finish=row.finish or "eos",
                new_tokens=row.generated,
                prompt_tokens=prompt_tokens[k],
            )
            prompt, answer = self.rows[k]
            kept = "".join(t.text for s in row.sentences for t in s.tokens)
            self.rows[k] = (prompt, answer + kept)
        return out

    def close(self, key: Hashable) -> None:
        self.rows.pop(key, None)


__all__ = [
    "Completer",
    "CompletionRequest",
    "RemoteCompletion",
    "RemoteLanguageModel",
    "RemoteSession",
    "RemoteToken",
    "word_pieces",
]
