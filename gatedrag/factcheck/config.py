"""How the fact checker routes and searches (:class:`FactCheckConfig`, the ``factcheck`` section of
a pipeline configuration file).

Example:
    >>> FactCheckConfig.model_validate({"routing": {"alpha": 0.4}, "force_route": "direct"}).routing.alpha
    0.4
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.factcheck.certainty import Label
from gatedrag.factcheck.routing import Route, RoutingConfig


class FactCheckConfig(BaseModel):
    """How the checker routes and searches."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    force_route: Route | None = None
    """Send every claim down this route whatever its signals (the baselines: ``direct`` = never
    search; ``deep_search`` with ``deep_rounds: 1`` = always search once with the claim; ``deep_search``
    = always search deep; and the runs a routing replay is tuned from)."""
    corpus_signal: bool = False
    """Compute the claim's corpus signal (:mod:`gatedrag.factcheck.corpus`: entity frequency and
    head/tail co-occurrence in the corpus searched, from the ``corpus_stats`` settings) as part of its
    assessment: traced, a feature of the calibration, and with ``routing.corpus_doubt`` a reason to
    search."""
    min_evidence_overlap: float = Field(default=0.5, ge=0.0, le=1.0)
    """Evidence sharing less than this share of the claim's content words does not address the
    claim: the verdict is not enough information whatever the model says of it (a small model calls
    a claim true beside an unrelated passage). 0: never overruled."""
    label_bias: dict[Label, float] = Field(default_factory=dict)
    """Log-offsets added to each label's probability mass when the verdict's label is chosen
    (closed book or with evidence): a contextual calibration of a model that answers "True" by
    default, tuned on training claims (``benchmarks/bench_factcheck.py tune``). τ, the routing and
    a deep search's stop read the model's own distribution."""
    rationales: int = Field(default=2, ge=1, le=16)
    """K: rationales written for, and K against, each claim (PCC does not give its K; each claim's
    assessment costs 2K rationales and 2K² contradiction prompts, 13 prompts at K = 2)."""
    temperature: float = Field(default=0.7, gt=0.0, le=10.0)
    seed: int = Field(default=0, ge=0)
    top_k: int = Field(default=3, ge=1, le=50)
    """Passages each search returns."""
    deep_rounds: int = Field(default=2, ge=1, le=10)
    """Search rounds of a deep search (each a search): the claim, then what the model says is missing."""
    max_passages: int = Field(default=6, ge=1, le=50)
    """Evidence passages the verdict reads (the newest round's first)."""
    max_passage_words: int = Field(default=200, ge=10)
    max_query_words: int = Field(default=48, ge=4)
    rationale_sentences: int = Field(default=3, ge=0, le=20)
    """Sentences named as each evidence passage's rationale (each judged alone: one batched pass);
    0: none named."""
    rationale_passages: int = Field(default=2, ge=1, le=50)
    """Evidence passages whose rationale sentences are named (the first ones: the newest round's best)."""
    rationale_candidates: int = Field(default=3, ge=1, le=50)
    """Sentences judged per passage: those sharing the most content words with the claim (each
    judged sentence is a forward pass; a SciFact abstract has about ten)."""
    batch_size: int = Field(default=8, ge=1, le=256)
    """Claims checked together (each decodes 2K rationales: 8 claims with K = 2 are 32 rows). The
    rationales are sampled with ``seed`` per row of the group, so the same claims in the same order and
    groups give the same verdicts; another grouping draws other rationales."""


ASSESSMENT_FIELDS: tuple[str, ...] = (
    "corpus_signal",
    "rationales",
    "temperature",
    "seed",
    "batch_size",
    "max_passage_words",
)
"""The configuration fields a claim's closed-book assessment depends on (what :meth:`FactChecker.sweep`'s
variants share)."""


__all__ = ["ASSESSMENT_FIELDS", "FactCheckConfig"]
