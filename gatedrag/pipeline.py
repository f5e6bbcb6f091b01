"""The controller loop: generate a sentence, score it, accept it or retrieve and regenerate.

:class:`GatedRAG` answers questions sentence by sentence with a real language model. While the
model writes, every finished sentence is scored by the gate's signals (read from the token
distributions the model already produced). A sentence whose signals cross their thresholds is
discarded, a query is built from it with its doubtful tokens masked, passages are retrieved, and
the sentence is written again with the passages in the prompt. Questions are decoded together in
batches. Everything that happened is recorded in the answer's trace.

Example (loads the default model; the first run assembles and converts it once)::

    from gatedrag import GatedRAG
    rag = GatedRAG.from_config()
    answer = rag.ask("Who directed the 1994 film about Ed Wood?")
    print(answer.answer, answer.counts.retrievals)
    for step in answer.steps:
        print(step.kind, step.text or step.query, step.decision)
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from gatedrag.config import GateConfig, PipelineConfig
from gatedrag.errors import ContextLengthError, InputError
from gatedrag.gate import Gate
from gatedrag.lm.base import DecodeSession, LanguageModel, SentenceVerdict
from gatedrag.lm.sentences import find_sentence_end
from gatedrag.prompts import PromptTemplate
from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.query import truncate_words
from gatedrag.signals.base import SentenceContext
from gatedrag.types import (
    Answer,
    AnswerFinish,
    Counts,
    Decision,
    Hit,
    Reason,
    Sentence,
    SignalValue,
    Step,
    StepPassage,
)

StepCallback = Callable[[int, Step], None]
DRAFT_TRIGGER = "closed-book draft"
RetrievalOutcome = Literal["new", "same", "failed"]


@dataclass
class _Job:
    index: int
    question: str
    t0: float
    accepted: list[Sentence] = field(default_factory=list)
    accepted_ids: list[int] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    passages: list[Hit] | None = None
    after_retrieval: bool = False  # the next sentence is the regeneration of a rejected one
    ungated: bool = False  # the rest of the answer is written with passages and accepted (TokenRAG code)
    drop_passages: bool = False
    mix: bool = False  # knowledge control is on for this row (until the next retrieval)
    adjust: Sentence | None = None  # a sentence to write again under knowledge control
    after_adjust: bool = False  # the next sentence is that rewrite
    segment_start: int = 0  # len(accepted_ids) when the row was last (re)started
    rejected: tuple[Sentence, Decision, list[SignalValue]] | None = None
    scheduled: tuple[str, str] | None = None  # (query, trigger) of a retrieval due before the next segment
    drafting: bool = False  # writing the closed-book draft (``PipelineConfig.draft``)
    done: bool = False
    finish: AnswerFinish = "answer"
    on_step: StepCallback | None = None


def build_draft_gate(config: PipelineConfig, *, corpus: Any = None, extractor: Any = None) -> Gate | None:
    """The gate that judges a closed-book draft (``config.draft``), or ``None`` without a draft."""
    if config.draft is None:
        return None
    return Gate(GateConfig(rules=config.draft.rules, combine=config.draft.combine), corpus=corpus, extractor=extractor)


def validate_question(question: object) -> str:
    """Return the stripped question or raise :class:`InputError`."""
    if not isinstance(question, str):
        raise InputError(f"a question must be a string, got {type(question).__name__}")
    if not question.strip():
        raise InputError("the question is empty: ask something")
    return question.strip()


def extract_answer(text: str, marker: str = "the answer is") -> str | None:
    """The short answer after the last ``marker`` (case-insensitive) that is followed by one, cut at
    the end of its sentence and without trailing punctuation; ``None`` if there is none."""
    for m in reversed(list(re.finditer(re.escape(marker), text, flags=re.IGNORECASE))):
        tail = re.sub(r"^[\s:]+", "", text[m.end() :]).split("\n")[0]
        end = find_sentence_end(tail + " ")
        answer = (tail[:end] if end is not None else tail).strip().rstrip(".!").strip()
        if answer:
            return answer
    return None


class GatedRAG:
    """Uncertainty-gated retrieval-augmented answering (see the module doc for the loop).

    Components are injected: any :class:`~gatedrag.lm.base.LanguageModel`, any
    :class:`~gatedrag.retrieval.base.Retriever` (or ``None`` for closed-book answering), a gate
    and a prompt template. :meth:`from_config` builds the embedded defaults.
    """

    def __init__(
        self,
        lm: LanguageModel,
        retriever: Retriever | None,
        config: PipelineConfig | None = None,
        *,
        gate: Gate | None = None,
        prompt: PromptTemplate | None = None,
        draft_gate: Gate | None = None,
    ):
        self.lm = lm
        self.retriever = retriever
        self.config = config or PipelineConfig()
        self.gate = gate or Gate(self.config.gate)
        self.prompt = prompt or PromptTemplate.load(self.config.prompt)
        self.draft_gate = draft_gate or build_draft_gate(self.config)
        """Judges the closed-book draft (``config.draft``); ``None``: no draft is written."""

    @classmethod
    def from_config(
        cls, config: PipelineConfig | None = None, *, progress: Callable[[str], None] | None = None
    ) -> GatedRAG:
        """Load the configured model and retriever (defaults: the packaged model, the demo corpus)."""
        from gatedrag.config import CORPUS_SIGNALS
        from gatedrag.lm.hf import HFLanguageModel
        from gatedrag.retrieval.factory import build_retriever

        config = config or PipelineConfig()
        retriever = build_retriever(config.retrieval, progress=progress)
        corpus = None
        draft_rules = config.draft.rules if config.draft is not None else []
        if any(r.signal in CORPUS_SIGNALS for r in [*config.gate.rules, *draft_rules]):
            from gatedrag.corpus.factory import build_corpus_stats
            from gatedrag.retrieval.corpus import demo_corpus_path

            corpus_file = config.retrieval.corpus or demo_corpus_path()
            corpus = build_corpus_stats(config.corpus_stats, corpus_file, progress=progress)
        if progress:
            progress(f"loading model {config.model.name}")
        lm = HFLanguageModel.load(config.model, progress=progress)
        extractor = None
        if corpus is not None:
            from gatedrag.corpus.extract import load_extractor

            extractor = load_extractor(config.corpus_stats.extractor, lm=lm)
        return cls(
            lm,
            retriever,
            config,
            gate=Gate(config.gate, corpus=corpus, extractor=extractor),
            draft_gate=build_draft_gate(config, corpus=corpus, extractor=extractor),
        )

    # -- public API -----------------------------------------------------------------------------
    def ask(self, question: str, *, on_step: StepCallback | None = None) -> Answer:
        """Answer one question; ``on_step(0, step)`` is called as each trace step happens."""
        return self.batch([question], on_step=on_step)[0]

    def batch(self, questions: Sequence[str], *, on_step: StepCallback | None = None) -> list[Answer]:
        """Answer several questions, decoding ``generation.batch_size`` of them together."""
        if isinstance(questions, str):
            raise InputError("batch() takes a list of questions; use ask() for one")
        cleaned = [validate_question(q) for q in questions]
        size = self.config.generation.batch_size
        answers: list[Answer] = []
        for lo in range(0, len(cleaned), size):
            answers += self._run([(lo + i, q) for i, q in enumerate(cleaned[lo : lo + size])], on_step)
        return answers

    # -- the loop -------------------------------------------------------------------------------
    def _run(self, items: list[tuple[int, str]], on_step: StepCallback | None) -> list[Answer]:
        gen = self.config.generation
        session = self.lm.open_session()
        jobs: dict[Hashable, _Job] = {
            i: _Job(index=i, question=q, t0=time.perf_counter(), on_step=on_step) for i, q in items
        }
        if gen.retrieve_first and self.retriever is not None:
            self._retrieve([(j, j.question, "before generation") for j in jobs.values()])
        elif self.gate.question_signals:
            self._check_questions(list(jobs.values()))
        if self.draft_gate is not None and self.retriever is not None:
            for job in jobs.values():
                job.drafting = job.passages is None  # not for a question already sent to retrieval
        for key, job in jobs.items():
            self._start(session, key, job, initial=True)
        rounds = 0
        while active := [k for k, j in jobs.items() if not j.done]:
            rounds += 1
            budgets = {k: max(1, gen.max_answer_tokens - len(jobs[k].accepted_ids)) for k in active}
            outcomes = session.decode(
                active,
                on_sentence=lambda key, sentence: self._on_sentence(jobs[key], sentence),
                budgets=budgets,
                max_sentence_tokens=gen.segment_tokens or gen.max_sentence_tokens,
                stop_strings=gen.stop_strings,
                split_sentences=gen.segment_tokens is None,
            )
            to_retrieve: list[tuple[_Job, str | list[str], str]] = []
            ended: dict[Hashable, AnswerFinish] = {}
            for key in active:
                job, out = jobs[key], outcomes[key]
                job.counts.llm_calls += 1
                job.counts.generated_tokens += out.new_tokens
                if out.finish in ("eos", "stop", "budget"):
                    ended[key] = out.finish  # type: ignore[assignment]
                if job.rejected is not None and job.drafting:
                    query = truncate_words(job.question, self.config.retrieval.max_query_tokens)
                    to_retrieve.append((job, query, f"doubtful draft sentence {len(job.accepted) + 1}"))
                elif job.rejected is not None:
                    sentence, decision, values = job.rejected
                    query = self.gate.queries(
                        sentence.tokens,
                        decision,
                        values,
                        self._context(job),
                        max_words=self.config.retrieval.max_query_tokens,
                        include_question=self.config.retrieval.query_with_question,
                        previous=self._previous_sentences(job),
                    )
                    to_retrieve.append((job, query, f"sentence {len(job.accepted) + 1}"))
                elif job.adjust is not None:
                    sentence, job.adjust = job.adjust, None
                    job.mix = True
                    if self._start(session, key, job):
                        job.after_adjust = True
                        job.counts.adjustments += 1
                    else:
                        self._keep(job, sentence, note="knowledge control unavailable; sentence kept")
                        if self._is_final(sentence) or key in ended:
                            self._finish(session, key, job, ended.get(key, "answer"))
                elif job.scheduled is not None and not job.done and key not in ended:
                    query, trigger = job.scheduled
                    job.scheduled = None
                    to_retrieve.append((job, query, trigger))
                elif job.done:
                    session.close(key)
                elif (
                    key in ended or len(job.accepted_ids) >= gen.max_answer_tokens or rounds > 4 * gen.max_answer_tokens
                ):
                    self._finish(session, key, job, ended.get(key, "budget"))
                elif job.drop_passages:
                    job.drop_passages, job.passages = False, None
                    self._start(session, key, job)
            if to_retrieve:
                for (job, _, _), outcome in zip(to_retrieve, self._retrieve(to_retrieve)):
                    key = job.index
                    if job.rejected is None:  # a scheduled retrieval: carry on with or without passages
                        if outcome == "new":
                            self._start(session, key, job)
                        continue
                    sentence = job.rejected[0]
                    job.rejected = None
                    if job.drafting:
                        job.drafting = False
                        if outcome == "new":
                            self._discard_draft(job)
                            if self._start(session, key, job):
                                job.ungated = gen.accept_after_retrieval == "rest"
                                continue
                    if outcome == "new" and self._start(session, key, job):
                        job.after_retrieval = True
                        job.ungated = gen.accept_after_retrieval == "rest"
                        continue
                    note = (
                        "no new passages; sentence kept"
                        if outcome == "same"
                        else "retrieval unavailable; sentence kept"
                    )
                    self._keep(job, sentence, note=note)
                    if self._is_final(sentence) or key in ended:
                        self._finish(session, key, job, ended.get(key, "answer"))
        return [self._answer(jobs[k]) for k, _ in items]

    def _discard_draft(self, job: _Job) -> None:
        """Drop the closed-book draft: the answer is written again from its start with passages."""
        for step in job.steps:
            if step.kind == "sentence" and step.trigger == DRAFT_TRIGGER:
                step.accepted = False
                step.note = "closed-book draft, discarded: the answer was written again with passages"
        job.accepted, job.accepted_ids = [], []

    def _on_draft_sentence(self, job: _Job, sentence: Sentence) -> SentenceVerdict:
        """A sentence of the closed-book draft: judged by the draft's rules only. The main gate's
        signals are computed too, for the trace, but do not act on a draft."""
        assert self.draft_gate is not None
        context = self._context(job) if self.draft_gate.needs_context or self.gate.needs_context else None
        values, decision = self.draft_gate.evaluate(sentence.tokens, context)
        shown = {v.name for v in values}
        for v in self.gate.evaluate(sentence.tokens, context)[0]:
            if v.name not in shown:
                values.append(v.model_copy(update={"acting": False}))
        if decision.action != "accept":
            if job.counts.retrievals >= self.config.generation.max_retrievals:
                decision.action = "accept"
                decision.note = f"retrieval budget of {self.config.generation.max_retrievals} spent"
            else:
                decision.action, decision.note = "retrieve", "draft abandoned: retrieve with the question"
        self._record(
            job,
            Step(
                index=len(job.steps),
                kind="sentence",
                text=sentence.text,
                tokens=len(sentence.tokens),
                signals=values,
                decision=decision,
                trigger=DRAFT_TRIGGER,
            ),
        )
        if decision.action == "retrieve":
            job.rejected = (sentence, decision, values)
            return "act"
        self._keep(job, sentence)
        if self._is_final(sentence):
            job.done, job.finish = True, "answer"
            return "done"
        return "continue"

    def _previous_sentences(self, job: _Job) -> str:
        """The answer's last ``retrieval.query_with_previous`` accepted sentences, for a query."""
        n = self.config.retrieval.query_with_previous
        return " ".join(s.text.strip() for s in job.accepted[-n:]) if n else ""

    def _check_questions(self, jobs: list[_Job]) -> None:
        """QuCo Stage 1: the question-stage signals on every question; retrieve with the question
        for those that fire (the passages stay in the prompt from the first sentence on)."""
        to_retrieve = []
        for job, (values, decision) in zip(jobs, self.gate.evaluate_questions([j.question for j in jobs])):
            if decision.action == "retrieve" and self.retriever is None:
                decision.action, decision.note = "accept", "no retriever configured"
            self._record(
                job, Step(index=len(job.steps), kind="question", text=job.question, signals=values, decision=decision)
            )
            if decision.action == "retrieve":
                fired = ", ".join(r.signal for r in decision.reasons)
                to_retrieve.append((job, job.question, f"question check ({fired})"))
        if to_retrieve:
            self._retrieve(to_retrieve)

    def _start(self, session: DecodeSession, key: Hashable, job: _Job, *, initial: bool = False) -> bool:
        """(Re)start a row on the closed-book or retrieval prompt plus the answer so far.

        A prompt too long for the model drops passages from the end until it fits (noted on the
        retrieval step). If it cannot fit at all, the first start raises ContextLengthError; a restart
        is recorded as degraded and returns False, leaving the row as it was.
        """
        passages = list(job.passages) if job.passages is not None else None
        while True:
            prefix, prompt = self.prompt.render(job.question, passages)
            control: dict = {}
            always = self.config.control_mode == "always"
            if passages and getattr(session, "supports_control", False) and (always or self._controls(session)):
                # a no-context twin measures the confidence gain (and, once adjusted, re-mixes)
                control = {
                    "parametric_prompt": self.prompt.render(job.question, None)[1],
                    "control": self.config.control,
                    "mix": job.mix or always,
                }
            try:
                job.counts.prompt_tokens += session.start(
                    key, prompt, cached_prefix=prefix, continuation=job.accepted_ids, **control
                )
                job.segment_start = len(job.accepted_ids)
                break
            except ContextLengthError as err:
                if passages:
                    passages = passages[:-1]
                    continue
                if initial:
                    raise
                self._record(job, Step(index=len(job.steps), kind="retrieval", error=str(err)))
                return False
        if job.passages and passages is not None and len(passages) < len(job.passages):
            last = next(s for s in reversed(job.steps) if s.kind == "retrieval")
            last.error = f"context too long for all passages: kept {len(passages)} of {len(job.passages)}"
            last.carried = [i for i in last.carried if i in {h.passage.id for h in passages}]
            job.passages = passages
        return True

    def _controls(self, session: DecodeSession) -> bool:
        """Whether the gate has an "adjust" rung and the model's session can decode a twin."""
        return getattr(session, "supports_control", False) and any(
            getattr(sig, "action", "retrieve") == "adjust" for sig in self.gate.signals
        )

    def _control_note(self) -> str:
        c = self.config.control
        how = "adaptive" if c.adaptive else f"alpha={c.alpha:g}"
        return f"knowledge control on: {how}, epsilon={c.epsilon:g}"

    def _is_final(self, sentence: Sentence) -> bool:
        """Whether a segment completes the answer: it holds the answer marker (for fixed-length
        segments, followed by a finished sentence, so a chunk cut mid-answer does not end it)."""
        gen = self.config.generation
        text = sentence.text.lower()
        pos = text.find(gen.answer_marker.lower())
        if pos < 0:
            return False
        if gen.segment_tokens is None:
            return True
        return find_sentence_end(sentence.text[pos + len(gen.answer_marker) :] + " ") is not None

    def _context(self, job: _Job) -> SentenceContext:
        return SentenceContext(
            question=job.question, answer_ids=tuple(job.accepted_ids), segment_start=job.segment_start, model=self.lm
        )

    def _record(self, job: _Job, step: Step) -> None:
        job.steps.append(step)
        if job.on_step is not None:
            job.on_step(job.index, step)

    def _keep(self, job: _Job, sentence: Sentence, *, note: str | None = None) -> None:
        job.accepted.append(sentence)
        job.accepted_ids += sentence.token_ids
        for step in reversed(job.steps):
            if step.kind == "sentence":
                step.accepted = True
                if note and step.decision is not None:
                    step.decision.note = note
                break

    def _on_sentence(self, job: _Job, sentence: Sentence) -> SentenceVerdict:
        """The sentence hook: gate the sentence, record it, and say whether the row goes on."""
        if job.drafting:
            return self._on_draft_sentence(job, sentence)
        gate_cfg, gen = self.config.gate, self.config.generation
        context = self._context(job) if self.gate.needs_context else None
        signals, decision = self.gate.evaluate(sentence.tokens, context)
        final = self._is_final(sentence)
        if decision.action == "retrieve":
            if self.retriever is None:
                decision.action, decision.note = "accept", "no retriever configured"
            elif final and not gate_cfg.check_final_sentence:
                decision.action, decision.note = "accept", "final-answer sentence is not checked"
            elif job.after_retrieval or job.after_adjust:
                decision.action, decision.note = "accept", "already regenerated with retrieved passages"
            elif job.ungated:
                decision.action, decision.note = (
                    "accept",
                    "written with retrieved passages (accept_after_retrieval=rest)",
                )
            elif job.counts.retrievals >= gen.max_retrievals:
                decision.action, decision.note = "accept", f"retrieval budget of {gen.max_retrievals} spent"
        if decision.action == "accept" and decision.note is not None and not job.mix:
            # retrieval was vetoed (already regenerated, budget spent, ...): the adjust rung may still act
            conflict = [
                v
                for v, sig in zip(signals, self.gate.signals)
                if v.fired and v.acting and getattr(sig, "action", "") == "adjust"
            ]
            if conflict:
                decision.action = "adjust"
                decision.reasons = [
                    Reason(signal=v.name, value=v.value, threshold=float(v.threshold), span=v.span)  # type: ignore[arg-type]
                    for v in conflict
                ]
        if decision.action == "adjust":
            if job.mix or self.config.control_mode == "always":
                decision.action, decision.note = "accept", "already written under knowledge control"
            elif job.ungated:
                decision.action, decision.note = (
                    "accept",
                    "written with retrieved passages (accept_after_retrieval=rest)",
                )
            else:
                decision.note = self._control_note()
        regenerated = job.after_retrieval
        adjusted = job.after_adjust
        job.after_retrieval = job.after_adjust = False
        self._record(
            job,
            Step(
                index=len(job.steps),
                kind="sentence",
                text=sentence.text,
                accepted=False,
                tokens=len(sentence.tokens),
                signals=signals,
                decision=decision,
                trigger="regenerated under knowledge control"
                if adjusted
                else "regenerated after retrieval"
                if regenerated
                else None,
            ),
        )
        if decision.action == "retrieve":
            job.rejected = (sentence, decision, signals)
            return "act"
        if decision.action == "adjust":
            job.adjust = sentence
            return "act"
        self._keep(job, sentence)
        if final:
            job.done, job.finish = True, "answer"
            return "done"
        if gen.scheduled_retrieval and self.retriever is not None and job.counts.retrievals < gen.max_retrievals:
            query = job.question if gen.scheduled_query == "question" else sentence.text
            kind = "chunk" if gen.segment_tokens else "sentence"
            job.scheduled = (
                truncate_words(query, self.config.retrieval.max_query_tokens),
                f"scheduled after {kind} {len(job.accepted)}",
            )
            return "act"
        if regenerated and not gen.keep_passages:
            job.drop_passages = True
            return "act"
        return "continue"

    def _retrieve(self, requests: Sequence[tuple[_Job, str | list[str], str]]) -> list[RetrievalOutcome]:
        """Run the queries (batched); several queries of one request are retrieved separately and
        their passages pooled (deduplicated, in order). A failing retriever degrades the step
        instead of raising. Per request: ``new`` (the row's passages were replaced), ``same`` (every
        passage is already in the prompt: nothing to regenerate from, unless
        ``generation.regenerate_without_new_passages``) or ``failed``."""
        assert self.retriever is not None
        k = self.config.retrieval.top_k
        groups = [[q] if isinstance(q, str) else list(q) for _, q, _ in requests]
        queries = [q for group in groups for q in group]
        try:
            flat: list[list[Hit] | Exception] = list(self.retriever.retrieve(queries, k))
        except Exception:
            flat = []
            for q in queries:
                try:
                    flat.append(self.retriever.retrieve([q], k)[0])
                except Exception as err:
                    flat.append(err)
        ok: list[RetrievalOutcome] = []
        pos = 0
        for (job, _, trigger), group in zip(requests, groups):
            results, pos = flat[pos : pos + len(group)], pos + len(group)
            step = Step(index=len(job.steps), kind="retrieval", query=" | ".join(group), trigger=trigger)
            errors = [r for r in results if isinstance(r, Exception)]
            if len(errors) == len(results):  # all failed (or no query at all)
                err = errors[0] if errors else ValueError("no query")
                step.error = f"retriever failed: {type(err).__name__}: {err}"
                ok.append("failed")
            else:
                job.counts.retrievals += 1
                pooled: dict[str, Hit] = {}
                for res in results:
                    if not isinstance(res, Exception):
                        for h in res:
                            pooled.setdefault(h.passage.id, h)
                hits = [h.model_copy(update={"rank": i + 1}) for i, h in enumerate(pooled.values())]
                step.passages = [
                    StepPassage(id=h.passage.id, title=h.passage.title, score=h.score, rank=h.rank) for h in hits
                ]
                if errors:
                    step.error = (
                        f"{len(errors)} of {len(results)} queries failed: {type(errors[0]).__name__}: {errors[0]}"
                    )
                held = {h.passage.id for h in job.passages or []}
                if hits and not self.config.generation.regenerate_without_new_passages and held >= set(pooled):
                    step.note = "every passage is already in the prompt"
                    ok.append("same")
                    self._record(job, step)
                    continue
                if hits:
                    carry = self.config.retrieval.carry_passages
                    new = {h.passage.id for h in hits}
                    kept = [h for h in job.passages or [] if h.passage.id not in new][:carry] if carry else []
                    step.carried = [h.passage.id for h in kept]
                    job.passages = hits + kept
                    job.mix = False  # new passages: measure again before controlling
                else:
                    step.error = step.error or "no passage matched the query"
                ok.append("new" if hits else "failed")
            self._record(job, step)
        return ok

    def _finish(self, session: DecodeSession, key: Hashable, job: _Job, reason: AnswerFinish) -> None:
        job.done = True
        job.finish = "answer" if any(self._is_final(s) for s in job.accepted) else reason
        session.close(key)

    def _answer(self, job: _Job) -> Answer:
        marker = self.config.generation.answer_marker
        text = " ".join(s.text for s in job.accepted)
        short = extract_answer(text, marker)
        job.counts.wall_time_s = round(time.perf_counter() - job.t0, 3)
        return Answer(
            question=job.question,
            text=text,
            answer=short if short is not None else (job.accepted[-1].text if job.accepted else ""),
            confidence=self._confidence(job.accepted, marker),
            counts=job.counts,
            steps=job.steps,
            finish_reason=job.finish,
            model=getattr(self.lm, "name", ""),
        )

    @staticmethod
    def _confidence(sentences: list[Sentence], marker: str) -> float:
        """Geometric-mean probability of the final answer's tokens (all accepted tokens if none)."""
        for s in reversed(sentences):
            text = "".join(t.text for t in s.tokens)
            pos = text.lower().rfind(marker.lower())
            if pos < 0:
                continue
            cut, offset, picked = pos + len(marker), 0, []
            for t in s.tokens:
                if offset >= cut and t.text.strip(" .\n"):
                    picked.append(t.logprob)
                offset += len(t.text)
            if picked:
                return float(min(1.0, math.exp(sum(picked) / len(picked))))
        logps = [t.logprob for s in sentences for t in s.tokens]
        return float(min(1.0, math.exp(sum(logps) / len(logps)))) if logps else 0.0


__all__ = ["DRAFT_TRIGGER", "GatedRAG", "build_draft_gate", "extract_answer", "validate_question"]
