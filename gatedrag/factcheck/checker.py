"""The fact checker: claim -> verdict, evidence, confidence and the event trace, searching only for
the claims the closed-book signals leave in doubt (PCC's routing, anchors §6).

For a batch of claims, each step runs for all of them at once: the closed-book certainty τ (one
forward pass), the consistency γ of K rationales for and against (one sampled round, one scoring
pass), the route (:mod:`~gatedrag.factcheck.routing`), then for the routes that search: the
round's queries (the most contradictory rationale pair; what the model says is missing; the claim
itself), one batched retrieval, one batched three-way verdict with the evidence so far. A deep
search goes on in rounds while its verdict stays uncertain (τ < α) and its search budget lasts.
Evidence that settles nothing, or none found, gives *not enough information*, never a guess. A
failing retriever degrades the check (traced), it never raises.

Example (with any language model and retriever)::

    from gatedrag.factcheck.checker import FactChecker
    checker = FactChecker(lm, retriever)
    v = checker.check("Aspirin inhibits platelet aggregation.")
    v.label, v.confidence, v.route, [e.passage.title for e in v.evidence]
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gatedrag.errors import ConfigError, InputError
from gatedrag.events import Degraded
from gatedrag.factcheck.certainty import LABELS, Label, VerdictCertainty
from gatedrag.factcheck.claims import validate_claim
from gatedrag.factcheck.config import ASSESSMENT_FIELDS, FactCheckConfig
from gatedrag.factcheck.consistency import Consistency, pair_query, reasoning_consistency
from gatedrag.factcheck.corpus import ClaimSignals
from gatedrag.factcheck.events import (
    ClaimAssessed,
    Evidence,
    FactCheckEvent,
    Judged,
    Routed,
    Searched,
    SearchStarted,
    Verdict,
    VerdictGiven,
)
from gatedrag.factcheck.routing import ROUTES, Route, route
from gatedrag.factcheck.sentences import SentenceSource, evidence_overlap, passage_sentences, rationale_sentences
from gatedrag.factcheck.verdict import BINARY, THREE_WAY, VerdictCheck, judge
from gatedrag.gate.combiner import Combiner
from gatedrag.lm.base import DecodeSession, LanguageModel, NextToken, next_token_checked, score_checked
from gatedrag.lm.chat import complete
from gatedrag.lm.sampling import Sampling
from gatedrag.prompts import numbered_passages
from gatedrag.retrieval.base import Retriever, retrieve_each
from gatedrag.retrieval.query import truncate_words
from gatedrag.types import Hit, Passage, SignalValue, StepPassage, TokenStep

REFLECT_PROMPT = (
    "Claim: {claim}\n{evidence}What is the one fact you would need to look up to decide whether the claim is true? "
    "Write it as a short search query.\nQuery:"
)
"""The reflect step's prompt (the evidence read so far, if any, before the question)."""

FactCheckCallback = Callable[[int, FactCheckEvent], None]
"""Called with (claim's position in the batch, event) as each event is emitted."""

CORPUS_SIGNALS: tuple[str, ...] = ("entity_freq", "cooc")
"""The corpus signal's values that are verdict features (:class:`~gatedrag.factcheck.corpus.CorpusSignals`)."""

VERDICT_FEATURES: tuple[str, ...] = (
    "p_label",
    "tau_closed",
    "gamma",
    "tau_evidence",
    "p_label_evidence",
    "evidence_overlap",
    "searches",
    "passages",
    "corpus_fired",
    *(f"corpus:{name}" for name in CORPUS_SIGNALS),
    *(f"route:{r}" for r in ROUTES),
    *(f"label:{lab}" for lab in LABELS),
)
"""Every feature :func:`verdict_features` can give (what a calibration file may be fitted on)."""


def verdict_features(
    *,
    label: Label,
    p_label: float,
    closed: VerdictCertainty,
    consistency: Consistency,
    judged: VerdictCertainty | None,
    route: Route,
    searches: int,
    passages: int,
    corpus: Sequence[SignalValue] = (),
    overlap: float = 1.0,
) -> dict[str, float]:
    """The features of a verdict: its uncalibrated probability ``p_label``, the closed-book τ, γ,
    τ and the label's probability with the evidence (when there was some), searches run, evidence
    passages read, the share of the claim's words in the evidence, the corpus signal's values and
    whether it fired (when configured), the route and the label (one-hot).

    >>> from gatedrag.factcheck.certainty import VerdictCertainty
    >>> c = VerdictCertainty(p_supported=0.6, p_refuted=0.3, p_nei=0.0, tau=0.3, label="supported", top_two_agree=False)
    >>> f = verdict_features(label="supported", p_label=0.67, closed=c, consistency=Consistency(gamma=0.8),
    ...                      judged=None, route="direct", searches=0, passages=0)
    >>> f["tau_closed"], f["route:direct"], "tau_evidence" in f
    (0.3, 1.0, False)
    """
    f = {
        "p_label": p_label,
        "tau_closed": closed.tau,
        "gamma": consistency.gamma,
        "searches": float(searches),
        "passages": float(passages),
    }
    if judged is not None:
        f["tau_evidence"] = judged.tau
        f["p_label_evidence"] = judged.probability(label)
        f["evidence_overlap"] = overlap
    if corpus:
        f["corpus_fired"] = float(any(v.fired for v in corpus))
        f.update(
            {
                f"corpus:{v.name}": v.value
                for v in corpus
                if v.note is None and v.error is None and v.name in CORPUS_SIGNALS
            }
        )
    f.update({f"route:{r}": float(r == route) for r in ROUTES})
    f.update({f"label:{lab}": float(lab == label) for lab in LABELS})
    return f


class _OnceEachPrompt:
    """A language model that computes each prompt's next-token distribution once (a sweep's
    variants often judge the same evidence); everything else goes to ``lm``."""

    def __init__(self, lm: LanguageModel):
        self.lm = lm
        self.name, self.context_length, self.capabilities = lm.name, lm.context_length, lm.capabilities
        self._seen: dict[str, NextToken] = {}

    def count_tokens(self, text: str) -> int:
        return self.lm.count_tokens(text)

    def open_session(self) -> DecodeSession:
        return self.lm.open_session()

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        return score_checked(self.lm, prompts, continuations)

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        todo = [p for p in dict.fromkeys(prompts) if p not in self._seen]
        if todo:
            self._seen.update(zip(todo, next_token_checked(self.lm, todo)))
        return [self._seen[p] for p in prompts]


class _Decision(NamedTuple):
    """A verdict's label (``None``: not enough information), its probability and, without a label, why."""

    label: Label | None
    p: float
    why: str | None = None


@dataclass
class _Row:
    index: int
    claim: str
    on_event: FactCheckCallback | None
    events: list[FactCheckEvent] = field(default_factory=list)
    closed: VerdictCertainty | None = None
    consistency: Consistency | None = None
    corpus: list[SignalValue] = field(default_factory=list)
    route: Route = "direct"
    passages: list[Hit] = field(default_factory=list)
    judged: VerdictCertainty | None = None
    sentences: list[list[int]] = field(default_factory=list)  # per evidence passage: its rationale sentences
    rounds: int = 0
    overlap: float = 1.0
    """The share of the claim's content words in the evidence (:func:`evidence_overlap`)."""
    decided: _Decision | None = None
    """The verdict's label once the searches are done (:meth:`FactChecker._decide`)."""
    llm_calls: int = 0
    """Prompts the model was given for this claim (each rationale, pair and sentence judged is one)."""
    done: bool = False

    def emit(self, event_type: type, **fields: Any) -> None:
        event = event_type(seq=len(self.events), **fields)
        self.events.append(event)
        if self.on_event is not None:
            self.on_event(self.index, event)

    def branch(self) -> _Row:
        """A fresh row that starts from this row's assessment (its events so far and the calls it took)."""
        return _Row(
            self.index,
            self.claim,
            None,
            events=list(self.events),
            closed=self.closed,
            consistency=self.consistency,
            corpus=self.corpus,
            llm_calls=self.llm_calls,
        )


class FactChecker:
    """Checks claims with ``lm``, searching ``retriever`` for the doubtful ones (see the module doc).
    Without a retriever a claim routed to a search says that there was nothing to search.
    ``calibration``: a :class:`~gatedrag.gate.combiner.Combiner` fitted on verdict features of
    training claims; its probability is the confidence shown (without one: the label's share of
    the verdict token's probability mass). ``sentences``: an evidence passage's sentences, whose
    indices the verdict reports (default: its text cut at sentence ends). ``corpus``: the corpus
    signal (:class:`~gatedrag.factcheck.corpus.CorpusSignals`), given exactly when
    ``config.corpus_signal`` is set."""

    def __init__(
        self,
        lm: LanguageModel,
        retriever: Retriever | None,
        config: FactCheckConfig | None = None,
        *,
        calibration: Combiner | None = None,
        sentences: SentenceSource = passage_sentences,
        corpus: ClaimSignals | None = None,
    ):
        self.lm = lm
        self.retriever = retriever
        self.config = config or FactCheckConfig()
        if self.config.corpus_signal != (corpus is not None):
            raise ConfigError(
                "factcheck.corpus_signal needs the corpus signal component, and the component needs the setting"
                f" (corpus_signal is {self.config.corpus_signal}, a component was{'' if corpus else ' not'} given)"
            )
        self.corpus = corpus
        self.calibration = calibration
        self.sentences = sentences
        """Where an evidence passage's sentences come from (the corpus's own, when it has them)."""

    def check(self, claim: str, *, on_event: FactCheckCallback | None = None) -> Verdict:
        """Check one claim; ``on_event(0, event)`` is called as each event is emitted."""
        return self.batch([claim], on_event=on_event)[0]

    def batch(self, claims: Sequence[str], *, on_event: FactCheckCallback | None = None) -> list[Verdict]:
        """Check several claims, ``batch_size`` at a time, each step batched over them (see the module doc)."""
        rows = self._rows(claims, on_event)
        for group in self._groups(rows):
            self._assess(group)
            self._conclude(group, self.config)
        return [Verdict.from_events(r.claim, r.events) for r in rows]

    def sweep(self, claims: Sequence[str], variants: Mapping[str, FactCheckConfig]) -> dict[str, list[Verdict]]:
        """Check the claims once per variant configuration, sharing the closed-book assessment (τ, γ
        and their rationales) between them: what routing is tuned and compared from (each variant
        usually a ``force_route``). The verdicts are those :meth:`batch` with the variant's
        configuration gives, since the assessment depends only on the fields the variants must share
        with this checker's configuration (:data:`ASSESSMENT_FIELDS`; :class:`ConfigError` otherwise).
        The variants' ``llm_calls`` each count the shared assessment and every prompt as if it ran
        alone, though a verdict prompt two variants share (deep search's first round is
        always-retrieve's) runs once per batch of claims."""
        mine = self.config.model_dump(include=set(ASSESSMENT_FIELDS))
        for name, variant in variants.items():
            if variant.model_dump(include=set(ASSESSMENT_FIELDS)) != mine:
                raise ConfigError(f"variant {name!r} differs from the checker in how claims are assessed ({mine})")
        rows = self._rows(claims, None)
        out: dict[str, list[_Row]] = {name: [] for name in variants}
        for group in self._groups(rows):
            shared = FactChecker(
                _OnceEachPrompt(self.lm),
                self.retriever,
                self.config,
                calibration=self.calibration,
                sentences=self.sentences,
                corpus=self.corpus,
            )
            shared._assess(group)
            for name, variant in variants.items():
                branch = [r.branch() for r in group]
                shared._conclude(branch, variant)
                out[name] += branch
        return {name: [Verdict.from_events(r.claim, r.events) for r in rs] for name, rs in out.items()}

    def _rows(self, claims: Sequence[str], on_event: FactCheckCallback | None) -> list[_Row]:
        if isinstance(claims, str):
            raise InputError("batch() takes a list of claims; use check() for one")
        return [_Row(i, validate_claim(c), on_event) for i, c in enumerate(claims)]

    def _groups(self, rows: list[_Row]) -> list[list[_Row]]:
        size = self.config.batch_size
        return [rows[lo : lo + size] for lo in range(0, len(rows), size)]

    def _assess(self, rows: list[_Row]) -> None:
        """The closed-book signals of every row: τ (one pass), γ (one sampled round, one scoring pass)."""
        cfg = self.config
        closed = judge(self.lm, [VerdictCheck(claim=r.claim) for r in rows], max_passage_words=cfg.max_passage_words)
        sampling = Sampling(temperature=cfg.temperature, seed=cfg.seed)
        consistency = reasoning_consistency(self.lm, [r.claim for r in rows], k=cfg.rationales, sampling=sampling)
        corpus = self._corpus_signal([r.claim for r in rows])
        for row, tau, gamma, values in zip(rows, closed, consistency, corpus):
            row.closed, row.consistency, row.corpus = tau, gamma, values
            row.llm_calls += 1 + 2 * cfg.rationales + 2 * len(gamma.supporting) * len(gamma.refuting)
            row.emit(ClaimAssessed, certainty=tau, consistency=gamma, corpus=values)
            for v in values:
                if v.error is not None:  # its backend failed: the check went on without it
                    row.emit(Degraded, what="corpus", error=f"{v.name}: {v.error}")

    def _corpus_signal(self, claims: list[str]) -> list[list[SignalValue]]:
        """Each claim's corpus signal values (none without the component; a failure: traced values
        that do not fire)."""
        if self.corpus is None:
            return [[] for _ in claims]
        try:
            return self.corpus.evaluate(claims)
        except Exception as err:
            error = f"corpus signal unavailable: {type(err).__name__}: {err}"
            return [[SignalValue(name="corpus", value=0.0, error=error)] for _ in claims]

    def _conclude(self, rows: list[_Row], cfg: FactCheckConfig) -> None:
        """Route every assessed row, search for those routed to a search, give every verdict."""
        for row in rows:
            assert row.closed is not None and row.consistency is not None
            decision = route(tau=row.closed.tau, gamma=row.consistency.gamma, config=cfg.routing, corpus=row.corpus)
            if cfg.force_route is not None:
                note = f"forced by the configuration (the signals chose {decision.route})"
                decision = decision.model_copy(update={"route": cfg.force_route, "note": note})
            row.route = decision.route
            row.emit(Routed, route=decision.route, reasons=decision.reasons, note=decision.note)
        searching = [r for r in rows if r.route != "direct"]
        while searching := [r for r in searching if not r.done]:
            self._search_round(searching, cfg)
        for row in rows:
            row.overlap = evidence_overlap(row.claim, [h.passage for h in row.passages])
            row.decided = self._decide(row, cfg)
        named = [r for r in rows if r.route != "direct" and r.decided and r.decided.label not in (None, "nei")]
        self._name_sentences(named, cfg)
        for row in rows:
            self._give_verdict(row)

    def _name_sentences(self, rows: list[_Row], cfg: FactCheckConfig) -> None:
        """Each evidence passage's rationale sentences, for every row with a verdict (one pass)."""
        if not rows or not cfg.rationale_sentences:
            return
        requests = [(r.claim, r.decided.label, [h.passage for h in r.passages]) for r in rows]  # type: ignore[union-attr,misc]
        try:
            found = rationale_sentences(
                self.lm,
                requests,
                source=self.sentences,
                per_passage=cfg.rationale_sentences,
                passages=cfg.rationale_passages,
                candidates=cfg.rationale_candidates,
            )
        except Exception as err:  # the verdict goes on without sentence indices
            for row in rows:
                row.emit(
                    Degraded, what="sentences", error=f"rationale sentences unavailable: {type(err).__name__}: {err}"
                )
            return
        for row, named in zip(rows, found):
            row.sentences = named.sentences
            row.llm_calls += named.judged

    # -- searching --------------------------------------------------------------------------------
    def _search_round(self, rows: list[_Row], cfg: FactCheckConfig) -> None:
        """One round for every searching row: its query, one batched retrieval, one batched verdict."""
        if self.retriever is None:
            for row in rows:
                row.emit(Searched, query="", error="no corpus to search (the checker has no retriever)")
                row.done = True
            return
        queries = self._queries(rows, cfg)
        for row, (query, why) in zip(rows, queries):
            row.rounds += 1
            row.emit(SearchStarted, query=query, why=why, round=row.rounds)
        found = retrieve_each(self.retriever, [q for q, _ in queries], cfg.top_k)
        for row, (query, _), result in zip(rows, queries, found):
            if isinstance(result, Exception):
                row.emit(
                    Searched,
                    query=query,
                    error=f"retriever failed: {type(result).__name__}: {result}",
                    round=row.rounds,
                )
                continue
            if not result:
                row.emit(Searched, query=query, error="no passage matched the query", round=row.rounds)
                continue
            row.emit(Searched, query=query, passages=[StepPassage.of(h) for h in result], round=row.rounds)
            new = {h.passage.id for h in result}
            row.passages = (list(result) + [h for h in row.passages if h.passage.id not in new])[: cfg.max_passages]
        readers = [r for r in rows if r.passages]
        checks = [VerdictCheck(claim=r.claim, passages=[h.passage for h in r.passages]) for r in readers]
        for row, certainty in zip(readers, judge(self.lm, checks, max_passage_words=cfg.max_passage_words)):
            row.judged = certainty
            row.llm_calls += 1
            row.emit(Judged, certainty=certainty, passages=[h.passage.id for h in row.passages], round=row.rounds)
        for row in rows:
            settled = row.judged is not None and row.judged.tau >= cfg.routing.alpha
            row.done = row.route != "deep_search" or settled or row.rounds >= cfg.deep_rounds

    def _queries(self, rows: list[_Row], cfg: FactCheckConfig) -> list[tuple[str, str]]:
        """Each row's query this round and why: a targeted search's resolves the most contradictory
        rationale pair; reflect-then-search's, and a deep search's after its first round, is what the
        model says is missing; a deep search starts from the claim itself."""
        words = cfg.max_query_words
        out: list[tuple[str, str] | None] = [None] * len(rows)
        reflect: list[int] = []
        for i, row in enumerate(rows):
            if row.route == "targeted_search":
                assert row.consistency is not None
                out[i] = (
                    pair_query(row.claim, row.consistency, max_words=words),
                    "the most contradictory rationale pair",
                )
            elif row.route == "deep_search" and row.rounds == 0:
                out[i] = (truncate_words(row.claim, words), "deep search round 1: the claim")
            else:
                reflect.append(i)
        if reflect:
            for i, query in zip(reflect, self._reflect([rows[i] for i in reflect])):
                row = rows[i]
                why = "what the model says is missing" + (
                    f" (deep search round {row.rounds + 1})" if row.rounds else ""
                )
                out[i] = (truncate_words(query or row.claim, words), why)
        return [q for q in out if q is not None]

    def _reflect(self, rows: list[_Row]) -> list[str]:
        """What each row's model says it would look up (greedy, one batched round)."""
        prompts = []
        for row in rows:
            row.llm_calls += 1
            lines = numbered_passages([h.passage for h in row.passages], 60)
            evidence = "Evidence so far:\n" + "\n".join(lines) + "\n" if lines else ""
            prompts.append(REFLECT_PROMPT.format(claim=row.claim, evidence=evidence))
        try:
            return [c.text.strip().strip('"').strip() for c in complete(self.lm, prompts, max_tokens=32, stop=["\n"])]
        except Exception:  # the query falls back to the claim itself
            return [""] * len(rows)

    # -- the verdict ------------------------------------------------------------------------------
    @staticmethod
    def _decide(row: _Row, cfg: FactCheckConfig) -> _Decision:
        """The label and its probability: closed book for a direct verdict, else from the last
        verdict with evidence (``label_bias`` added); without one, why not."""
        assert row.closed is not None
        if row.route == "direct":
            return _Decision(*row.closed.biased(cfg.label_bias, BINARY), why="the model gave no verdict")
        if row.judged is None:
            return _Decision(None, 0.5, "no evidence found")
        if row.overlap < cfg.min_evidence_overlap:
            why = f"the evidence does not address the claim (it has {row.overlap:.0%} of the claim's words)"
            return _Decision(None, 0.5, why)
        return _Decision(*row.judged.biased(cfg.label_bias, THREE_WAY), why="the evidence read gave no verdict")

    def _give_verdict(self, row: _Row) -> None:
        assert row.closed is not None and row.consistency is not None
        assert row.decided is not None
        fields: dict[str, Any]
        decided, p, why = row.decided
        if row.route == "direct":
            label: Label = decided or "nei"
            side = row.consistency.supporting if label == "supported" else row.consistency.refuting
            note = "closed-book verdict (certain and consistent)" if decided else why
            fields = {"rationale": side[0] if side else "", "note": note}
        elif decided is None:
            label, p, fields = "nei", 0.5, {"note": f"{why}: not enough information"}
        else:
            label = decided
            top: Passage = row.passages[0].passage
            fields = {
                "evidence": [
                    Evidence(passage=h.passage, sentences=row.sentences[i] if i < len(row.sentences) else [])
                    for i, h in enumerate(row.passages)
                ],
                "rationale": f"{top.title}: {' '.join(top.text.split()[:40])}",
            }
        features = verdict_features(
            label=label,
            p_label=p,
            closed=row.closed,
            consistency=row.consistency,
            judged=row.judged,
            route=row.route,
            searches=row.rounds,
            passages=len(row.passages) if row.route != "direct" else 0,
            corpus=row.corpus,
            overlap=row.overlap,
        )
        confidence = self.calibration.probability(features) if self.calibration is not None else p
        row.emit(VerdictGiven, label=label, confidence=confidence, features=features, llm_calls=row.llm_calls, **fields)


__all__ = [
    "ASSESSMENT_FIELDS",
    "CORPUS_SIGNALS",
    "REFLECT_PROMPT",
    "VERDICT_FEATURES",
    "FactCheckCallback",
    "FactCheckConfig",
    "FactChecker",
    "verdict_features",
]
