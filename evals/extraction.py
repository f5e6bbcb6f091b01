"""Precision and recall of an entity/claim extractor on the hand-labelled gold set.

The gold set (``evals/data/extraction_gold.jsonl``, see its README) points into
``../shared/data/hotpotqa/dev.json``; texts are read from there. Scores, micro-averaged:

* **entities** (QuCo-RAG's measure): the set of heads and tails of a sentence's triples against the
  gold set's, after SQuAD normalisation; ``lenient`` also accepts one string containing the other
  ("Larnelle Steward Harris" / "Larnelle Harris");
* **pairs**: unordered (head, tail) pairs, what the co-occurrence check counts;
* **empty**: the fraction of reasoning sentences with no triple (QuCo reports 81.8%);
* **question entities**: the question's entity set.

Example::

    from gatedrag.corpus.extract import SpacyExtractor
    from gatedrag.evals.extraction import load_gold, score_extractor
    print(score_extractor(SpacyExtractor(), load_gold("../shared/data")))
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from gatedrag.corpus.extract import Extractor
from gatedrag.errors import DatasetError
from gatedrag.evals.metrics import normalize


class GoldItem(BaseModel):
    kind: str
    text: str
    triples: list[tuple[str, str, str]] = []
    entities: list[str] = []


class PRF(BaseModel):
    precision: float
    recall: float
    f1: float
    predicted: int
    gold: int


class ExtractionScores(BaseModel):
    extractor: str
    entities: PRF
    entities_lenient: PRF
    pairs: PRF
    empty_on_reasoning: float
    question_entities: PRF
    question_entities_lenient: PRF
    seconds_per_item: float


def gold_path() -> Path:
    return Path(str(files("gatedrag.evals").joinpath("data/extraction_gold.jsonl")))


def load_gold(data_dir: str | Path, path: str | Path | None = None) -> list[GoldItem]:
    """The gold items with their texts read from HotpotQA's dev file."""
    dev = Path(data_dir) / "hotpotqa" / "dev.json"
    try:
        records = {r["_id"]: r for r in json.loads(dev.read_text(encoding="utf-8"))}
    except FileNotFoundError:
        raise DatasetError(f"HotpotQA dev file not found: {dev}") from None
    items = []
    for line in Path(path or gold_path()).read_text(encoding="utf-8").splitlines():
        g = json.loads(line)
        if g["kind"] == "reasoning":
            items.append(GoldItem(kind="reasoning", text=g["text"]))
            continue
        record = records.get(g["id"])
        if record is None:
            raise DatasetError(f"gold item points at HotpotQA id {g['id']} that {dev} does not hold")
        if g["kind"] == "question":
            items.append(GoldItem(kind="question", text=record["question"], entities=g["entities"]))
        else:
            sentences = dict((t, s) for t, s in record["context"])[g["title"]]
            items.append(GoldItem(kind="sentence", text=sentences[g["sent"]].strip(), triples=g["triples"]))
    return items


def _match(a: str, b: str, lenient: bool) -> bool:
    a, b = normalize(a), normalize(b)
    return a == b or (lenient and bool(a) and bool(b) and (a in b or b in a))


def _prf(pairs: Iterable[tuple[Sequence[Any], Sequence[Any]]], same: Any) -> PRF:
    tp_p = tp_g = n_p = n_g = 0
    for predicted, gold in pairs:
        n_p, n_g = n_p + len(predicted), n_g + len(gold)
        tp_p += sum(any(same(p, g) for g in gold) for p in predicted)
        tp_g += sum(any(same(p, g) for p in predicted) for g in gold)
    precision = tp_p / n_p if n_p else 0.0
    recall = tp_g / n_g if n_g else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return PRF(precision=round(precision, 4), recall=round(recall, 4), f1=round(f1, 4), predicted=n_p, gold=n_g)


def _entity_set(triples: Iterable[Sequence[str]]) -> list[str]:
    seen: dict[str, str] = {}
    for t in triples:
        for e in (t[0], t[2]):
            seen.setdefault(normalize(e), e)
    return list(seen.values())


def score_extractor(extractor: Extractor, gold: Sequence[GoldItem]) -> ExtractionScores:
    """Run ``extractor`` on every gold item and score it (see the module doc)."""
    sentences = [g for g in gold if g.kind in ("sentence", "reasoning")]
    questions = [g for g in gold if g.kind == "question"]
    t0 = time.perf_counter()
    predicted = extractor.triples([g.text for g in sentences])
    asked = extractor.entities([g.text for g in questions])
    seconds = (time.perf_counter() - t0) / max(1, len(gold))
    factual = [(p, g) for p, g in zip(predicted, sentences) if g.kind == "sentence"]
    ent_pairs = [(_entity_set((t.head, t.relation, t.tail) for t in p), _entity_set(g.triples)) for p, g in factual]
    pair_sets = [([(t.head, t.tail) for t in p], [(h, t) for h, _, t in g.triples]) for p, g in factual]

    def same_pair(a: Sequence[str], b: Sequence[str]) -> bool:
        return (_match(a[0], b[0], True) and _match(a[1], b[1], True)) or (
            _match(a[0], b[1], True) and _match(a[1], b[0], True)
        )

    reasoning = [p for p, g in zip(predicted, sentences) if g.kind == "reasoning"]
    q_pairs = [(p, g.entities) for p, g in zip(asked, questions)]
    return ExtractionScores(
        extractor=extractor.name,
        entities=_prf(ent_pairs, lambda a, b: _match(a, b, False)),
        entities_lenient=_prf(ent_pairs, lambda a, b: _match(a, b, True)),
        pairs=_prf(pair_sets, same_pair),
        empty_on_reasoning=round(sum(not p for p in reasoning) / max(1, len(reasoning)), 4),
        question_entities=_prf(q_pairs, lambda a, b: _match(a, b, False)),
        question_entities_lenient=_prf(q_pairs, lambda a, b: _match(a, b, True)),
        seconds_per_item=round(seconds, 4),
    )


__all__ = ["ExtractionScores", "GoldItem", "gold_path", "load_gold", "score_extractor"]
