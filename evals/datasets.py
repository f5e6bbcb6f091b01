"""Loaders for the benchmark files in ``../shared/data`` (official formats), yielding typed examples.

Each loader reads one file, checks that its records carry the fields of the official format and
returns :class:`Example` objects in file order (evaluations take the first N, as the papers do).
A file of another format raises :class:`~gatedrag.errors.DatasetError` naming the fields expected.
Data are read where they are; nothing is copied.

=================  =============================================  ==========================  ========
dataset            question file                                  gold answers                metric
=================  =============================================  ==========================  ========
hotpotqa           hotpotqa/dev.json (distractor format)          answer                      EM / F1
2wikimultihopqa    2wikimultihopqa/dev.json                       answer + answer_aliases     EM / F1
musique            musique/train_100.jsonl                        answer + answer_aliases     EM / F1
popqa              popqa/popqa_1000.json                          possible_answers            EM / F1
pubmedqa           pubmedqa/ori_pqal.json                         final_decision (yes/no/maybe)  accuracy
=================  =============================================  ==========================  ========

Example:
    >>> from gatedrag.evals.datasets import load_dataset
    >>> examples = load_dataset("hotpotqa", "../shared/data", limit=2)  # doctest: +SKIP
    >>> examples[0].answers  # doctest: +SKIP
    ['Chief of Protocol']
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatedrag.errors import DatasetError

DEFAULT_DATA_DIR = Path("../shared/data")

Metric = Literal["qa", "accuracy"]


class Example(BaseModel):
    """One benchmark question: ``answers`` holds the gold answer first, then its aliases."""

    model_config = ConfigDict(frozen=True)
    id: str
    dataset: str
    question: str
    answers: list[str]
    metric: Metric = "qa"
    fields: dict[str, Any] = Field(default_factory=dict)
    """Dataset-specific fields (question type, level, popularity, ...)."""


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise DatasetError(f"{what}: no such file {path} (give the data directory with --data)")
    try:
        with path.open(encoding="utf-8") as f:
            if path.suffix == ".jsonl":
                return [json.loads(line) for line in f if line.strip()]
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{what}: {path} is not valid JSON{'L' if path.suffix == '.jsonl' else ''}: {err}") from None


def _records(data: Any, path: Path, what: str, required: Iterable[str]) -> list[dict[str, Any]]:
    required = list(required)
    if isinstance(data, dict) and not all(isinstance(v, dict) for v in data.values()):
        data = [data]
    rows = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(rows, list) or not rows:
        raise DatasetError(f"{what}: {path} holds no records; expected a list of objects with {', '.join(required)}")
    for i, row in enumerate(rows):
        missing = [k for k in required if not isinstance(row, dict) or k not in row]
        if missing:
            raise DatasetError(
                f"{what}: record {i} of {path} lacks {', '.join(missing)}; this loader expects the official "
                f"format with fields {', '.join(required)}"
            )
    return rows


def _aliases(value: Any) -> list[str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [value]
    return [str(v) for v in value or [] if str(v).strip()]


def _dedupe(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for x in items:
        seen.setdefault(x.strip(), None)
    return [x for x in seen if x]


Loader = Callable[[Path], list[Example]]


def _typed(what: str) -> Callable[[Loader], Loader]:
    """A loader whose records of the wrong shape (a question that is not a string, an answer
    list holding objects) raise :class:`DatasetError` naming the file, not a Python error."""

    def wrap(loader: Loader) -> Loader:
        @functools.wraps(loader)
        def load(path: Path) -> list[Example]:
            try:
                return loader(path)
            except (ValidationError, AttributeError, TypeError, ValueError) as err:
                if isinstance(err, DatasetError):
                    raise
                reason = err.errors()[0]["msg"] if isinstance(err, ValidationError) else f"{type(err).__name__}: {err}"
                raise DatasetError(f"{what}: {path} has a record with a field of the wrong type ({reason})") from None

        return load

    return wrap


@_typed("hotpotqa")
def load_hotpotqa(path: Path) -> list[Example]:
    """HotpotQA distractor JSON: ``_id, question, answer, type, level, supporting_facts, context``."""
    rows = _records(_read_json(path, "hotpotqa"), path, "hotpotqa", ["_id", "question", "answer", "context"])
    return [
        Example(
            id=r["_id"],
            dataset="hotpotqa",
            question=r["question"].strip(),
            answers=[r["answer"]],
            fields={"type": r.get("type"), "level": r.get("level"), "supporting_facts": r.get("supporting_facts")},
        )
        for r in rows
    ]


@_typed("2wikimultihopqa")
def load_2wikimultihopqa(path: Path) -> list[Example]:
    """2WikiMultihopQA JSON: ``_id, type, question, answer, answer_aliases, evidences``."""
    rows = _records(
        _read_json(path, "2wikimultihopqa"), path, "2wikimultihopqa", ["_id", "question", "answer", "answer_aliases"]
    )
    return [
        Example(
            id=r["_id"],
            dataset="2wikimultihopqa",
            question=r["question"].strip(),
            answers=_dedupe([r["answer"], *_aliases(r["answer_aliases"])]),
            fields={
                "type": r.get("type"),
                "evidences": r.get("evidences"),
                "supporting_facts": r.get("supporting_facts"),
            },
        )
        for r in rows
    ]


@_typed("musique")
def load_musique(path: Path) -> list[Example]:
    """MuSiQue JSONL: ``id, question, answer, answer_aliases, answerable, question_decomposition``."""
    rows = _records(_read_json(path, "musique"), path, "musique", ["id", "question", "answer", "answer_aliases"])
    return [
        Example(
            id=r["id"],
            dataset="musique",
            question=r["question"].strip(),
            answers=_dedupe([r["answer"], *_aliases(r["answer_aliases"])]),
            fields={
                "answerable": r.get("answerable"),
                "hops": len(r.get("question_decomposition") or []),
                "supporting_paragraphs": [
                    {"title": p.get("title", ""), "text": p.get("paragraph_text", "")}
                    for p in r.get("paragraphs") or []
                    if p.get("is_supporting")
                ],
            },
        )
        for r in rows
    ]


@_typed("popqa")
def load_popqa(path: Path) -> list[Example]:
    """PopQA JSON: ``id, question, possible_answers (a JSON string list), s_pop, prop``."""
    rows = _records(_read_json(path, "popqa"), path, "popqa", ["id", "question", "possible_answers", "s_pop"])
    return [
        Example(
            id=str(r["id"]),
            dataset="popqa",
            question=r["question"].strip(),
            answers=_dedupe(_aliases(r["possible_answers"])),
            fields={"s_pop": int(r["s_pop"]), "prop": r.get("prop"), "subj": r.get("subj")},
        )
        for r in rows
    ]


@_typed("pubmedqa")
def load_pubmedqa(path: Path) -> list[Example]:
    """PubMedQA ``ori_pqal.json``: ``{pmid: {QUESTION, CONTEXTS, final_decision, ...}}``; the gold
    is yes, no or maybe, scored by accuracy. ``pubmedqa/test_ground_truth.json`` beside it marks the
    standard 500-question test split (``fields["split"]``)."""
    data = _read_json(path, "pubmedqa")
    if not isinstance(data, dict):
        raise DatasetError(f"pubmedqa: {path} must map PubMed ids to records with QUESTION, CONTEXTS, final_decision")
    ids = list(data)
    rows = _records(data, path, "pubmedqa", ["QUESTION", "CONTEXTS", "final_decision"])
    split_file = path.parent / "test_ground_truth.json"
    test_ids = set(_read_json(split_file, "pubmedqa")) if split_file.is_file() else set()
    return [
        Example(
            id=pid,
            dataset="pubmedqa",
            question=r["QUESTION"].strip(),
            answers=[r["final_decision"]],
            metric="accuracy",
            fields={"split": "test" if pid in test_ids else "train", "year": r.get("YEAR")},
        )
        for pid, r in zip(ids, rows)
    ]


class DatasetSpec(BaseModel):
    """Where a dataset's questions and corpus live under the data directory, and its loader."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    name: str
    questions: str
    corpus: str | None
    loader: Callable[[Path], list[Example]]


DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in [
        DatasetSpec(
            name="hotpotqa", questions="hotpotqa/dev.json", corpus="hotpotqa/corpus.jsonl", loader=load_hotpotqa
        ),
        DatasetSpec(
            name="2wikimultihopqa",
            questions="2wikimultihopqa/dev.json",
            corpus="2wikimultihopqa/corpus.jsonl",
            loader=load_2wikimultihopqa,
        ),
        DatasetSpec(
            name="musique", questions="musique/train_100.jsonl", corpus="musique/corpus.jsonl", loader=load_musique
        ),
        DatasetSpec(name="popqa", questions="popqa/popqa_1000.json", corpus="popqa/corpus.jsonl", loader=load_popqa),
        DatasetSpec(name="pubmedqa", questions="pubmedqa/ori_pqal.json", corpus=None, loader=load_pubmedqa),
    ]
}
ALIASES = {"2wiki": "2wikimultihopqa", "hotpot": "hotpotqa"}


def dataset_spec(name: str) -> DatasetSpec:
    key = ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[key]


def load_dataset(
    name: str, data_dir: str | Path = DEFAULT_DATA_DIR, *, limit: int | None = None, skip: Iterable[str] = ()
) -> list[Example]:
    """The first ``limit`` examples of a dataset in file order, leaving out ids in ``skip`` (e.g. the
    questions a few-shot prompt was written from)."""
    spec = dataset_spec(name)
    skip = set(skip)
    examples = [e for e in spec.loader(Path(data_dir) / spec.questions) if e.id not in skip]
    return examples[:limit] if limit is not None else examples


def corpus_path(name: str, data_dir: str | Path = DEFAULT_DATA_DIR, *, cache_dir: Path | None = None) -> Path:
    """The dataset's retrieval corpus (JSONL ``{id, title, text}``). PubMedQA ships its abstracts
    inside the question file, so a corpus of one passage per abstract is written once to the cache."""
    spec = dataset_spec(name)
    data_dir = Path(data_dir)
    if spec.corpus is not None:
        path = data_dir / spec.corpus
        if not path.is_file():
            raise DatasetError(f"{spec.name}: corpus file {path} not found")
        return path
    source = data_dir / spec.questions
    data = _read_json(source, spec.name)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    from gatedrag.lm.packaged import default_cache_dir

    out = (cache_dir or default_cache_dir()) / "corpora" / f"{spec.name}-{digest}.jsonl"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".tmp{os.getpid()}")
        with tmp.open("w", encoding="utf-8") as f:
            for pid, rec in data.items():
                text = " ".join(str(c) for c in rec.get("CONTEXTS", []))
                f.write(json.dumps({"id": pid, "title": rec.get("QUESTION", ""), "text": text}) + "\n")
        os.replace(tmp, out)
    return out


__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIR",
    "DatasetSpec",
    "Example",
    "corpus_path",
    "dataset_spec",
    "load_2wikimultihopqa",
    "load_dataset",
    "load_hotpotqa",
    "load_musique",
    "load_popqa",
    "load_pubmedqa",
]
