"""A knowledge-conflict set built from PopQA: the gold passage says something else than the world.

For each PopQA question (``place of birth`` / ``occupation`` of an entity) whose answer, or one of
its aliases, is written in the subject's own passage, every mention of it is replaced by the answer
of another question with the same relation (a birthplace by another birthplace, an occupation by
another occupation), as ConFiQA / MQuAKE-style substitution does. The model then reads a passage
that contradicts what it may know:

* **memory recall** = the original answer (or an alias) appears in the model's answer;
* **context recall** = the substituted answer appears in it.

Plain RAG and CK-PLUG's alpha settings move answers between the two (anchors §2.2).

Example::

    from gatedrag.evals.conflict import build_conflict_set, conflict_recall
    examples = build_conflict_set("../shared/data", limit=100)
    examples[0].question, examples[0].passage, examples[0].context_answer
    conflict_recall(["Paris", ...], examples)     # {"memory_recall": ..., "context_recall": ...}
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from gatedrag.errors import DatasetError
from gatedrag.evals.metrics import normalize


class ConflictExample(BaseModel):
    """One counterfactual question: ``passage`` states ``context_answer`` where the real passage
    stated one of ``memory_answers``."""

    id: str
    question: str
    relation: str
    subject: str
    memory_answers: list[str]
    context_answer: str
    passage: str
    original_passage: str


def _answers(row: dict) -> list[str]:
    try:
        found = json.loads(row["possible_answers"])
    except (json.JSONDecodeError, TypeError):
        found = [row["obj"]]
    return [a for a in dict.fromkeys([row["obj"], *found]) if isinstance(a, str) and len(a.strip()) >= 2]


def _subject_paragraph(row: dict) -> str | None:
    raw = row.get("paragraphs")
    try:
        paragraphs = ast.literal_eval(raw) if isinstance(raw, str) else raw
    except (ValueError, SyntaxError):
        return None
    for p in paragraphs or []:
        if isinstance(p, dict) and p.get("title") == row.get("s_wiki_title"):
            return str(p.get("text", ""))
    return None


def _pattern(answers: Sequence[str]) -> re.Pattern[str]:
    alternatives = sorted({re.escape(a.strip()) for a in answers}, key=len, reverse=True)
    return re.compile(r"(?<!\w)(?:" + "|".join(alternatives) + r")(?!\w)", re.IGNORECASE)


def build_conflict_set(
    data_dir: str | Path,
    *,
    limit: int | None = None,
    shift: int = 1,
    order: Literal["file", "popularity"] = "file",
) -> list[ConflictExample]:
    """The counterfactual examples, relations alternating, each relation in PopQA file order or, with
    ``order="popularity"``, most popular subject first (PopQA's ``s_pop``, monthly Wikipedia page
    views): a small model knows few long-tail facts, and memory recall only means something for
    facts the model knows. Deterministic: the substitute is the answer of the ``shift``-th next
    usable question with the same relation whose answer differs."""
    if order not in ("file", "popularity"):
        raise ValueError(f"order must be 'file' or 'popularity', got {order!r}")
    path = Path(data_dir) / "popqa" / "popqa_1000.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError(f"PopQA file not found: {path}") from None
    if order == "popularity":
        rows = sorted(rows, key=lambda r: -float(r.get("s_pop") or 0))  # stable: file order among ties
    usable = []
    for row in rows:
        paragraph = _subject_paragraph(row)
        answers = _answers(row)
        if paragraph and answers and _pattern(answers).search(paragraph):
            usable.append((row, paragraph, answers))
    by_relation: dict[str, list[int]] = {}
    for i, (row, _, _) in enumerate(usable):
        by_relation.setdefault(row["prop"], []).append(i)
    out: list[ConflictExample] = []
    for i, (row, paragraph, answers) in enumerate(usable):
        peers = by_relation[row["prop"]]
        start = peers.index(i)
        known = {normalize(a) for a in answers}
        substitute = None
        for step in range(shift, len(peers) + shift):
            candidate = usable[peers[(start + step) % len(peers)]][0]["obj"]
            if normalize(candidate) not in known and normalize(candidate) not in normalize(paragraph):
                substitute = candidate
                break
        if substitute is None:
            continue
        out.append(
            ConflictExample(
                id=str(row["id"]),
                question=row["question"],
                relation=row["prop"],
                subject=row["subj"],
                memory_answers=answers,
                context_answer=substitute,
                passage=_pattern(answers).sub(substitute, paragraph),
                original_passage=paragraph,
            )
        )
    groups: dict[str, list[ConflictExample]] = {}
    for e in out:
        groups.setdefault(e.relation, []).append(e)
    mixed = [e for batch in zip_longest(*groups.values()) for e in batch if e is not None]  # relations alternate
    return mixed[:limit] if limit is not None else mixed


def _mentions(prediction: str, answers: Sequence[str]) -> bool:
    text = f" {normalize(prediction)} "
    return any(f" {normalize(a)} " in text for a in answers if normalize(a))


def conflict_recall(predictions: Sequence[str], examples: Sequence[ConflictExample]) -> dict[str, float]:
    """Memory recall and context recall (fractions in [0, 1]) of ``predictions``."""
    if len(predictions) != len(examples) or not examples:
        raise ValueError("one prediction per example, at least one")
    memory = sum(_mentions(p, e.memory_answers) for p, e in zip(predictions, examples))
    context = sum(_mentions(p, [e.context_answer]) for p, e in zip(predictions, examples))
    return {"memory_recall": memory / len(examples), "context_recall": context / len(examples), "n": len(examples)}


CONTEXT_PROMPT = (
    "Answer the question in a few words, using the passage.\nPassage: {passage}\nQuestion: {question}\nAnswer:"
)
PARAMETRIC_PROMPT = "Answer the question in a few words.\nQuestion: {question}\nAnswer:"
CLOSED_BOOK = "closed_book"
"""Setting value of :func:`evaluate_control` for answering without the passage."""


def _read_predictions(path: Path) -> dict[tuple[str, str], dict]:
    """The per-example records of an earlier run of :func:`evaluate_control` (a torn last line,
    from a killed run, is ignored and overwritten)."""
    done: dict[tuple[str, str], dict] = {}
    if not path.exists():
        return done
    good = 0
    with open(path, "rb") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break
            if not line.endswith(b"\n"):
                break
            done[(rec["setting"], rec["id"])] = rec
            good += len(line)
    if good != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good)
    return done


def evaluate_control(
    lm: object,
    examples: Sequence[ConflictExample],
    settings: dict[str, object],
    *,
    batch_size: int = 8,
    max_new_tokens: int = 12,
    progress: object = None,
    out: str | Path | None = None,
) -> dict[str, dict[str, float]]:
    """Memory and context recall of each setting (``None`` = plain RAG, :data:`CLOSED_BOOK` = the
    question without the passage, else a :class:`~gatedrag.config.KnowledgeControlConfig`) on the
    same examples, decoded with :func:`gatedrag.control.joint.generate_with_control` (one forward
    pass for both branches). Closed-book memory recall is what the model knows of these facts: the
    ceiling of any setting's memory recall.

    ``out``: a JSONL file of per-example records ``{setting, id, prediction, adjusted}``, appended
    and fsynced batch by batch; a run started again with the same file skips what it holds, so an
    interrupted sweep resumes. The setting's configuration and the model's name are part of each
    record; a file holding another configuration of the same setting name, or another model's
    answers, is refused."""
    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.control.joint import generate_with_control

    model, tok = lm.model, lm.tokenizer  # type: ignore[attr-defined]
    eos = sorted(getattr(lm, "eos_ids", {tok.eos_token_id}))
    model_name = getattr(lm, "name", None)
    path = Path(out) if out is not None else None
    done = _read_predictions(path) if path is not None else {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, float]] = {}
    with open(path, "a", encoding="utf-8") if path is not None else contextlib.nullcontext() as sink:
        for name, config in settings.items():
            described = config.model_dump(mode="json") if isinstance(config, KnowledgeControlConfig) else config
            closed = config == CLOSED_BOOK
            for (setting, _), rec in done.items():
                if setting == name and rec.get("config") != described:
                    raise ValueError(
                        f"{path} holds setting {name!r} with config {rec.get('config')}, not {described}: "
                        "use another output file"
                    )
                if rec.get("model") != model_name:
                    raise ValueError(
                        f"{path} holds answers of model {rec.get('model')!r}, not {model_name!r}: use another output file"
                    )
            todo = [e for e in examples if (name, e.id) not in done]
            for lo in range(0, len(todo), batch_size):
                batch = todo[lo : lo + batch_size]
                out_ = generate_with_control(
                    model,
                    tok,
                    [
                        PARAMETRIC_PROMPT.format(question=e.question)
                        if closed
                        else CONTEXT_PROMPT.format(passage=e.passage, question=e.question)
                        for e in batch
                    ],
                    [PARAMETRIC_PROMPT.format(question=e.question) for e in batch],
                    config if isinstance(config, KnowledgeControlConfig) else KnowledgeControlConfig(),
                    max_new_tokens=max_new_tokens,
                    eos_ids=eos,
                    control=isinstance(config, KnowledgeControlConfig),
                )
                for e, text, adj in zip(batch, out_.texts, out_.adjusted_fraction):
                    rec = {
                        "setting": name,
                        "id": e.id,
                        "prediction": text.strip().split("\n")[0],
                        "adjusted": adj,
                        "config": described,
                        "model": model_name,
                    }
                    done[(name, e.id)] = rec
                    if sink is not None:
                        sink.write(json.dumps(rec) + "\n")
                if sink is not None:
                    sink.flush()
                    os.fsync(sink.fileno())
                if callable(progress):
                    progress(name, sum(1 for e in examples if (name, e.id) in done), len(examples))
            recs = [done[(name, e.id)] for e in examples]
            scores = conflict_recall([r["prediction"] for r in recs], examples)
            scores["adjusted_token_fraction"] = sum(r["adjusted"] for r in recs) / len(recs)
            results[name] = scores
    return results


def summarize_conflict(path: str | Path, examples: Sequence[ConflictExample]) -> dict[str, dict[str, float]]:
    """Per setting of a record file written by :func:`evaluate_control`: memory and context recall
    on all ``examples`` and, when the file has a :data:`CLOSED_BOOK` setting, on the examples the
    model answers right without the passage (``known_*``; ``known_n`` of them), where memory recall
    can be compared with CK-PLUG's. Settings missing an example are skipped."""
    by: dict[str, dict[str, dict]] = {}
    for (setting, id_), rec in _read_predictions(Path(path)).items():
        by.setdefault(setting, {})[id_] = rec
    ids = [e.id for e in examples]
    closed = by.get(CLOSED_BOOK, {})
    known = [
        e for e in examples if e.id in closed and conflict_recall([closed[e.id]["prediction"]], [e])["memory_recall"]
    ]
    out: dict[str, dict[str, float]] = {}
    for setting, recs in by.items():
        if not all(i in recs for i in ids):
            continue
        row = conflict_recall([recs[i]["prediction"] for i in ids], examples)
        row["adjusted_token_fraction"] = sum(recs[i]["adjusted"] for i in ids) / len(ids)
        if known:
            k = conflict_recall([recs[e.id]["prediction"] for e in known], known)
            row |= {"known_memory_recall": k["memory_recall"], "known_context_recall": k["context_recall"]}
            row["known_n"] = len(known)
        out[setting] = row
    return out


__all__ = [
    "CLOSED_BOOK",
    "CONTEXT_PROMPT",
    "PARAMETRIC_PROMPT",
    "ConflictExample",
    "build_conflict_set",
    "conflict_recall",
    "evaluate_control",
    "summarize_conflict",
]
