"""Pydantic models for every value that crosses a layer.

Conventions used throughout:

* log-probabilities are natural logs (nats), ``<= 0``;
* entropies are in nats, ``>= 0``, over the model's full next-token distribution;
* every :class:`SignalValue` is oriented so that **higher = more uncertain**;
* token spans are half-open ``[start, end)`` indices into the tokens of one sentence.

Example:
    >>> from gatedrag.types import TokenStep
    >>> t = TokenStep(token_id=7, text=" Paris", logprob=-0.105, entropy=0.4)
    >>> round(t.prob, 2)
    0.9
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenAlternative(_Model):
    """One of the top-k candidates of a next-token distribution."""

    token_id: int
    text: str
    logprob: float = Field(le=0.0)


class TokenStep(_Model):
    """One generated token with the distribution it was drawn from.

    ``logprob`` is the log-probability of the chosen token and ``entropy`` the entropy (nats) of
    the full next-token distribution at that step, both read from the logits the model already
    produced while decoding (no extra forward pass).
    """

    token_id: int
    text: str
    logprob: float = Field(le=0.0)
    entropy: float = Field(ge=0.0)
    top: list[TokenAlternative] = Field(default_factory=list)
    confidence_gain: float | None = None
    """CK-PLUG's CG = H_p - H_c (nats) at this step when a no-context branch was decoded alongside
    (positive: the passages made the model surer); ``None`` otherwise."""
    conflict: bool | None = None
    """Whether this step passed CK-PLUG's conflict test (CG < epsilon * H_c)."""

    @property
    def prob(self) -> float:
        """Probability of the chosen token, in [0, 1]."""
        return math.exp(self.logprob)


def geometric_mean_probability(logprobs: Sequence[float]) -> float | None:
    """``exp`` of the mean log-probability, in [0, 1] (``None`` for no tokens): how sure the model
    was of a span of tokens on average.

    >>> round(geometric_mean_probability([math.log(0.5), math.log(0.8)]), 3), geometric_mean_probability([])
    (0.632, None)
    """
    if not logprobs:
        return None
    return float(min(1.0, math.exp(sum(logprobs) / len(logprobs))))


class Sentence(_Model):
    """A sentence the model generated, with the per-token distributions behind it.

    ``final`` marks the last piece of text of an answer (it ended at EOS, a stop string or the token
    budget rather than at a sentence boundary).
    """

    text: str
    tokens: list[TokenStep]
    final: bool = False

    @property
    def token_ids(self) -> list[int]:
        return [t.token_id for t in self.tokens]

    @property
    def confidence(self) -> float | None:
        """Geometric-mean probability of the sentence's tokens (``None``: it has none)."""
        return geometric_mean_probability([t.logprob for t in self.tokens])


FinishReason = Literal["act", "done", "eos", "stop", "budget", "paused"]


class DecodeOutcome(_Model):
    """What one decoding call did for one row: the sentences it completed, in order, and why it
    ended (``act`` / ``done``: the sentence hook's verdict; ``paused``: stopped at a sentence
    boundary so that other rows can be served; ``eos`` / ``stop`` / ``budget``: the text ended)."""

    sentences: list[Sentence] = Field(default_factory=list)
    finish: FinishReason
    new_tokens: int = 0
    prompt_tokens: int = 0


class Passage(_Model):
    """A corpus passage: the unit of retrieval. ``metadata``: what an external store keeps with it
    (a LangChain ``Document``'s metadata), JSON values only; left out of the JSON when empty."""

    id: str
    title: str = ""
    text: str
    metadata: dict[str, JsonValue] = Field(default_factory=dict, exclude_if=lambda v: not v)


class Hit(_Model):
    """A retrieved passage with its retriever score (higher = more relevant) and 1-based rank."""

    passage: Passage
    score: float
    rank: int = Field(ge=1)


class Triple(_Model):
    """A claim of a sentence: ``head`` and ``tail`` are entity or value strings as written in the
    sentence, ``relation`` a short phrase between them (QuCo-RAG's extractor format)."""

    head: str
    relation: str = ""
    tail: str


class CorpusCount(_Model):
    """How often a phrase (or a co-occurrence of phrases) occurs in a corpus-statistics index.

    ``count`` is an occurrence count in the index's tokens (not a document count). For a
    co-occurrence (``terms`` has 2+ entries) it counts occurrences of the rarest term that have a
    match of every other term within ``window`` tokens in the same document (Infini-gram CNF
    semantics). ``approx``: a term had more than ``max_clause_freq`` matches, was subsampled and the
    count rescaled (a zero can then be spurious). ``total_tokens``: the index size, so a count can
    be read as a rate.
    """

    terms: list[str]
    count: int = Field(ge=0)
    approx: bool = False
    window: int | None = None
    total_tokens: int | None = None
    backend: str = ""
    latency_ms: float | None = None
    note: str | None = None

    @property
    def query(self) -> str:
        """The query in the Infini-gram API's string syntax (``A AND B``)."""
        return " AND ".join(self.terms)

    @property
    def per_million(self) -> float | None:
        """Occurrences per million index tokens (``None`` when the index size is unknown)."""
        return self.count * 1e6 / self.total_tokens if self.total_tokens else None


class Span(_Model):
    """A half-open token span ``[start, end)`` of a sentence and its text."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str


class SignalValue(_Model):
    """The value of one uncertainty signal on one sentence (higher = more uncertain).

    ``span`` points at the part of the sentence the signal blames (e.g. its least likely tokens)
    and ``token_indices`` lists the individual tokens it flags. ``details`` carries the raw
    quantities behind ``value`` (for instance the minimum token probability), named with units.
    ``fired``: the value crossed the signal's threshold; ``acting``: the gate lets this signal
    trigger retrieval (one configured with ``act=False`` is computed and traced only).
    """

    name: str
    value: float
    threshold: float | None = None
    fired: bool = False
    acting: bool = True
    span: Span | None = None
    token_indices: list[int] = Field(default_factory=list)
    details: dict[str, float] = Field(default_factory=dict)
    note: str | None = None
    """Why the value is missing or partial by design (e.g. the model exposes no attention)."""
    error: str | None = Field(default=None, exclude_if=lambda v: v is None)
    """The backend behind the value failed (its error): the value is missing and the answer is
    degraded (a :class:`~gatedrag.events.Degraded` event says so); left out of the JSON when none."""
    info: str | None = None
    """What the value is about, in words (e.g. the entities looked up, the unsupported claims)."""
    queries: list[str] = Field(default_factory=list, exclude_if=lambda v: not v)
    """What this signal would retrieve with if it acts (QuCo's unsupported claims, one query
    each); empty (and left out of the JSON): the sentence's masked text. Carried in the value, so
    rows that write the same sentence never share state."""


class Reason(_Model):
    """Why the gate acted: a signal that crossed its threshold."""

    signal: str
    value: float
    threshold: float
    span: Span | None = None


class Decision(_Model):
    """The gate's verdict on one sentence."""

    action: Literal["accept", "retrieve", "deep_search", "adjust"]
    reasons: list[Reason] = Field(default_factory=list)
    note: str | None = None


class StepPassage(_Model):
    """A passage as recorded in the trace (id, title, score, rank). In the events the passage's
    ``text`` and ``metadata`` come along (what a streaming client shows); the per-step view
    (:attr:`Step.passages`, the evaluation records) keeps the summary only."""

    id: str
    title: str
    score: float
    rank: int
    text: str = Field(default="", exclude_if=lambda v: not v)
    metadata: dict[str, JsonValue] = Field(default_factory=dict, exclude_if=lambda v: not v)

    @classmethod
    def of(cls, hit: Hit) -> StepPassage:
        """The traced form of a hit, text and metadata included."""
        p = hit.passage
        return cls(id=p.id, title=p.title, score=hit.score, rank=hit.rank, text=p.text, metadata=p.metadata)

    def summary(self) -> StepPassage:
        """The passage without its text and metadata."""
        return self.model_copy(update={"text": "", "metadata": {}}) if self.text or self.metadata else self


class Step(_Model):
    """One entry of an answer's trace, in the order things happened.

    ``kind="question"``: the question-stage signals (corpus frequency of the question's entities)
    and whether they sent the question to retrieval before generating. ``kind="sentence"``: a
    sentence the model generated, the signal values computed on it and the gate's decision; ``accepted`` says whether it stayed in the answer (a sentence the gate sent to
    retrieval is replaced by a regenerated one). ``kind="retrieval"``: a retrieval with its query and
    passages; ``error`` is set when the retriever failed and the answer went on without passages.
    """

    index: int
    kind: Literal["question", "sentence", "retrieval"]
    text: str = ""
    accepted: bool = False
    tokens: int = 0
    signals: list[SignalValue] = Field(default_factory=list)
    decision: Decision | None = None
    query: str | None = None
    passages: list[StepPassage] = Field(default_factory=list)
    carried: list[str] = Field(default_factory=list)
    """Ids of earlier retrievals' passages kept in the prompt after this one's
    (``retrieval.carry_passages``)."""
    trigger: str | None = None
    error: str | None = None
    note: str | None = None
    """What the controller made of a step that is not an error (a retrieval that found nothing new)."""

    @property
    def degraded(self) -> bool:
        """True when this step's backend failed and the answer continued without it."""
        return self.error is not None


class Counts(_Model):
    """Cost counters of one answer."""

    llm_calls: int = 0
    retrievals: int = 0
    adjustments: int = 0
    """Sentences written again under knowledge control (the gate's "adjust" rung)."""
    generated_tokens: int = 0
    prompt_tokens: int = 0
    wall_time_s: float = 0.0


AnswerFinish = Literal["answer", "eos", "budget", "stop", "deadline"]
"""Why an answer ended: a final-answer sentence, end-of-sequence, the token budget, a stop string,
or its turn's deadline (:class:`gatedrag.scheduler.Scheduler`: it ends with what it has)."""


def __getattr__(name: str) -> object:
    # The answer is the fold of its events, so it lives beside them (gatedrag.events builds on the
    # types above); it is importable from here as well.
    if name == "Answer":
        from gatedrag.events import Answer

        return Answer
    raise AttributeError(f"module 'gatedrag.types' has no attribute {name!r}")


__all__ = [
    "AnswerFinish",
    "CorpusCount",
    "Counts",
    "Decision",
    "DecodeOutcome",
    "FinishReason",
    "Hit",
    "Passage",
    "Reason",
    "Sentence",
    "SignalValue",
    "Span",
    "Step",
    "StepPassage",
    "TokenAlternative",
    "TokenStep",
    "Triple",
]
