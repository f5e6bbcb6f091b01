"""Dataset loaders for the official formats (HotpotQA distractor JSON so far).

Example::

    from gatedrag.evals.datasets import load_hotpotqa
    examples = load_hotpotqa("../shared/data", limit=20)
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from gatedrag.errors import InputError


class Example(BaseModel):
    """One question with its gold answers (first = canonical, the rest aliases)."""

    model_config = ConfigDict(extra="forbid")
    id: str
    question: str
    answers: list[str]
    dataset: str


def load_hotpotqa(data_dir: str | Path = "../shared/data", *, limit: int | None = None) -> list[Example]:
    """HotpotQA dev questions in file order (``hotpotqa/dev.json``); its corpus is ``hotpotqa/corpus.jsonl``."""
    path = Path(data_dir) / "hotpotqa" / "dev.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read HotpotQA file {path}: {err}") from None
    if not isinstance(rows, list) or (rows and not {"_id", "question", "answer"} <= set(rows[0])):
        raise InputError(
            f"{path} is not HotpotQA distractor JSON: expected a list of objects with _id, question, answer"
        )
    rows = rows[:limit] if limit else rows
    return [Example(id=r["_id"], question=r["question"], answers=[r["answer"]], dataset="hotpotqa") for r in rows]


def hotpotqa_corpus(data_dir: str | Path = "../shared/data") -> Path:
    return Path(data_dir) / "hotpotqa" / "corpus.jsonl"


__all__ = ["Example", "hotpotqa_corpus", "load_hotpotqa"]
