"""The language-model protocol gatedrag drives, independent of any backend.

Text goes in (prompts); text and token steps come out, each step with its log-probability, the
entropy of the distribution it was drawn from and its top-k alternatives. A backend decodes
several *rows* (one per question being answered) together and reports every finished sentence to a
hook; the hook's verdict decides what happens to the row: ``"continue"`` (keep writing),
``"done"`` (the answer is complete), ``"act"`` (stop so that the controller can act on this
sentence, e.g. retrieve) or ``"pause"`` (the sentence is fine, but stop here so that the controller
can add rows to the batch; the row goes on at the next ``decode`` call). Sentence cutting is backend-neutral (:mod:`gatedrag.lm.cutter`).

What a backend can do beyond that is declared in :class:`ModelCapabilities`, never probed: the
full-vocabulary entropy (else each step's ``entropy`` is :func:`~gatedrag.lm.topk.topk_entropy`,
the estimate from the top-k), attention (DRAGIN's RIND and QFS), no-context twins (CK-PLUG's
confidence gain and knowledge control), per-row KV caches. The protocol also *scores* without
generating (:meth:`LanguageModel.score`, :meth:`LanguageModel.next_token`).

Example (with any backend, e.g. :class:`gatedrag.lm.hf.HFLanguageModel`)::

    session = lm.open_session()
    session.start("q1", "Question: Where is Paris?\\nAnswer:")
    out = session.decode(["q1"], on_sentence=lambda key, s: "continue", budgets={"q1": 64})
    print(out["q1"].sentences[0].text)
    lm.score(["The capital of France is"], [" Paris"])[0][0].logprob
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.config import KnowledgeControlConfig
from gatedrag.errors import BackendError
from gatedrag.lm.sampling import Sampling
from gatedrag.types import DecodeOutcome, Sentence, TokenAlternative, TokenStep

SentenceVerdict = Literal["continue", "done", "act", "pause"]
"""What a sentence hook decides: keep writing, the row is finished, stop so the controller can act,
or stop at this sentence boundary so that the controller can admit new rows (continuous batching)."""

SentenceHook = Callable[[Hashable, Sentence], SentenceVerdict]
"""Called with (row key, sentence) for each completed sentence."""


class ModelCapabilities(BaseModel):
    """What a backend offers beyond text and top-k token log-probabilities."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    full_entropy: bool = True
    """Token steps carry the entropy of the full next-token distribution; ``False``: the estimate
    from the top-k (:func:`gatedrag.lm.topk.topk_entropy`, a lower bound)."""
    top_k: int = Field(default=5, ge=0)
    """Alternatives per token step (OpenAI-compatible servers return at most 20)."""
    attention: bool = False
    """``attention(ids)`` is available (DRAGIN's RIND and QFS)."""
    twins: bool = False
    """Sessions decode no-context twins (:class:`Twin`): knowledge control and the confidence gain."""
    kv_cache: bool = False
    """Rows keep their cache between decoding calls (a continuation costs only its new tokens)."""
    logprobs: bool = True
    """Token steps carry the model's log-probabilities and alternatives; ``False`` (a remote model
    that returns text only): every token-distribution signal is unavailable, traced as such, and
    the gate acts on the other families."""

    def missing(self, needs: frozenset[str]) -> list[str]:
        """Which of a config's model needs (signal ``needs``: ``logprobs``, ``attention``, ``twin``)
        this backend cannot serve; the other needs (corpus, extractor, context) are not the model's.

        >>> ModelCapabilities(attention=False, twins=False).missing(frozenset({"attention", "corpus"}))
        ['attention']
        """
        served = {"attention": self.attention, "twin": self.twins, "logprobs": self.logprobs}
        return sorted(n for n in needs if n in served and not served[n])


class Twin(BaseModel):
    """A no-context twin of a row: the same answer tokens decoded after ``prompt`` (the prompt
    without passages) in the same batch, so every token carries CK-PLUG's confidence gain; with
    ``mix`` the row's logits are re-mixed under ``control``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    control: KnowledgeControlConfig = KnowledgeControlConfig()
    mix: bool = False


class NextToken(BaseModel):
    """The next-token distribution after a prompt: its entropy (nats) and most likely tokens."""

    model_config = ConfigDict(extra="forbid")

    entropy: float = Field(ge=0.0)
    top: list[TokenAlternative]


@runtime_checkable
class DecodeSession(Protocol):
    """Rows being decoded by one model, each with its own prompt."""

    def start(
        self,
        key: Hashable,
        prompt: str,
        *,
        cached_prefix: str = "",
        continuation: Sequence[Sentence] = (),
        twin: Twin | None = None,
    ) -> int:
        """(Re)start row ``key`` on ``prompt`` followed by ``continuation``, the sentences of the
        answer so far (a backend re-uses their tokens exactly). ``cached_prefix``, a prefix of
        ``prompt`` shared by many rows (instructions and few-shot demos), may be encoded once and
        reused. ``twin``: decode a no-context twin alongside (only where the model's capabilities
        say ``twins``). Returns the row's prompt length in tokens (the twin's included)."""
        ...

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
        """Continue the rows ``keys`` together until each stops; ``budgets`` caps new tokens per row.
        Greedy by default; with ``sampling`` each row's tokens are drawn (temperature, top-p; row
        ``i`` of ``keys`` from its own generator), their statistics still the model's own.

        Segments handed to the hook end at sentence boundaries or after ``max_sentence_tokens``
        tokens; with ``split_sentences=False`` only the length cuts them (fixed-length chunks).

        With ``regroup``, once the hook asks any row to ``"act"`` the other rows stop at their next
        sentence boundary (``finish="paused"``) so the controller can serve them all in one round.
        A ``"pause"`` verdict stops its row (``finish="paused"``) and, with ``regroup``, the others
        at their next boundary the same way.
        """
        ...

    def close(self, key: Hashable) -> None:
        """Forget a row and free its cache."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """A causal language model that exposes its next-token distributions while it writes."""

    name: str
    context_length: int
    capabilities: ModelCapabilities

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (without special tokens)."""
        ...

    def open_session(self) -> DecodeSession:
        """A new, empty set of rows."""
        ...

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        """Each token of ``continuations[i]`` after ``prompts[i]``, with its log-probability, the
        entropy of the distribution it was drawn from and the top-k alternatives: all pairs in one
        batched forward pass, nothing generated."""
        ...

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        """The next-token distribution after each prompt (entropy and top-k), in one batched pass."""
        ...


def score_checked(lm: LanguageModel, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
    """``lm.score(prompts, continuations)``, checked: one list of :class:`TokenStep` per prompt,
    else :class:`~gatedrag.errors.BackendError` (a malformed or partial answer is a failure)."""
    scored = lm.score(prompts, continuations)
    if not isinstance(scored, list) or len(scored) != len(prompts):
        got = len(scored) if isinstance(scored, list) else type(scored).__name__
        raise BackendError(f"the model {lm.name!r} scored {got} continuations of {len(prompts)}")
    for steps in scored:
        if not isinstance(steps, list) or not all(isinstance(t, TokenStep) for t in steps):
            raise BackendError(f"the model {lm.name!r} returned a malformed scored continuation")
    return scored


def next_token_checked(lm: LanguageModel, prompts: Sequence[str]) -> list[NextToken]:
    """``lm.next_token(prompts)``, checked: one :class:`NextToken` per prompt, else
    :class:`~gatedrag.errors.BackendError`."""
    found = lm.next_token(prompts)
    if not isinstance(found, list) or len(found) != len(prompts) or not all(isinstance(n, NextToken) for n in found):
        raise BackendError(f"the model {lm.name!r} returned a malformed next-token answer for {len(prompts)} prompts")
    return found


__all__ = [
    "DecodeSession",
    "LanguageModel",
    "ModelCapabilities",
    "NextToken",
    "SentenceHook",
    "SentenceVerdict",
    "Twin",
    "next_token_checked",
    "score_checked",
]
