"""JSONL corpora: one ``{"id": str, "title": str, "text": str}`` object a line.

Example:
    >>> from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus
    >>> passages = load_corpus(demo_corpus_path())
    >>> len(passages) > 100
    True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path

from gatedrag.errors import CorpusError
from gatedrag.types import Passage


def demo_corpus_path() -> Path:
    """The small Wikipedia demo corpus shipped inside the package (see ``gatedrag/data/README.md``)."""
    return Path(str(files("gatedrag.data").joinpath("demo_corpus.jsonl")))


def corpus_sha256(path: str | Path) -> str:
    """Checksum of a corpus file, used to tell whether an index is stale."""
    digest = hashlib.sha256()
    if not Path(path).exists():
        raise CorpusError(f"corpus file not found: {path}")
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
    except OSError as err:
        raise CorpusError(f"cannot read corpus {path}: {err.strerror or err}") from None
    return digest.hexdigest()


def iter_corpus(path: str | Path) -> Iterator[Passage]:
    """Stream and validate a JSONL corpus (constant memory apart from the ids seen); every problem
    is a :class:`CorpusError` naming its line."""
    p = Path(path)
    if not p.exists():
        raise CorpusError(f"corpus file not found: {p}")
    if p.is_dir():
        raise CorpusError(f"corpus path {p} is a directory; give a .jsonl file")
    seen: dict[str, int] = {}
    try:
        with open(p, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise CorpusError(f"{p}, line {lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
                if not isinstance(obj, dict):
                    raise CorpusError(f"{p}, line {lineno}: expected a JSON object with id, title, text")
                missing = [f for f in ("id", "text") if f not in obj]
                if missing:
                    raise CorpusError(f"{p}, line {lineno}: missing field(s) {', '.join(missing)}")
                pid, title, text = obj["id"], obj.get("title", ""), obj["text"]
                if isinstance(pid, int) and not isinstance(pid, bool):
                    pid = str(pid)
                if not isinstance(pid, str) or not pid:
                    raise CorpusError(f"{p}, line {lineno}: 'id' must be a non-empty string")
                if not isinstance(text, str) or not isinstance(title, str | None):
                    raise CorpusError(f"{p}, line {lineno}: 'title' and 'text' must be strings")
                if pid in seen:
                    raise CorpusError(f"{p}, line {lineno}: duplicate id {pid!r} (first on line {seen[pid]})")
                seen[pid] = lineno
                yield Passage(id=pid, title=title or "", text=text)
    except UnicodeDecodeError as err:
        raise CorpusError(f"{p} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise CorpusError(f"cannot read corpus {p}: {err.strerror or err}") from None
    if not seen:
        raise CorpusError(f"corpus {p} is empty: it needs at least one passage")


def load_corpus(path: str | Path) -> list[Passage]:
    """Read and validate a JSONL corpus; every problem is a :class:`CorpusError` with its line."""
    return list(iter_corpus(path))


__all__ = ["corpus_sha256", "demo_corpus_path", "iter_corpus", "load_corpus"]
