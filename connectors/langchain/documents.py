"""Passages and LangChain ``Document``s, converted both ways without losing metadata.

A passage's id, title, score and rank travel in the document's metadata under the keys of
:data:`RESERVED`; everything else in a document's metadata is kept on the passage (JSON values as
they are, anything else as its ``repr``).

Example:
    >>> from langchain_core.documents import Document
    >>> from gatedrag.connectors.langchain.documents import to_document, to_passage
    >>> doc = Document(page_content="Paris is in France.", metadata={"title": "Paris", "lang": "en"}, id="p1")
    >>> p = to_passage(doc)
    >>> p.id, p.title, p.metadata
    ('p1', 'Paris', {'lang': 'en'})
    >>> to_document(p, score=2.5, rank=1).metadata
    {'lang': 'en', 'id': 'p1', 'title': 'Paris', 'score': 2.5, 'rank': 1}
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from langchain_core.documents import Document
from pydantic import JsonValue

from gatedrag.errors import BackendError
from gatedrag.types import Passage, StepPassage

RESERVED = ("id", "title", "score", "rank")
"""Metadata keys a converted document carries gatedrag's fields in."""


def json_metadata(metadata: dict[str, Any]) -> dict[str, JsonValue]:
    """``metadata`` with every value JSON-safe (non-JSON values become their ``repr``)."""
    out: dict[str, JsonValue] = {}
    for key, value in metadata.items():
        try:
            json.dumps(value, allow_nan=False)
            out[str(key)] = value
        except (TypeError, ValueError):
            out[str(key)] = repr(value)
    return out


def to_passage(doc: Any) -> Passage:
    """A retrieved document as a passage; its id is the document's id, else ``metadata["id"]``, else
    a digest of its text. Anything that is not a ``Document`` is refused (:class:`BackendError`)."""
    if not isinstance(doc, Document):
        raise BackendError(f"the retriever returned a {type(doc).__name__}, not a langchain Document")
    meta = dict(doc.metadata or {})
    pid = doc.id or meta.get("id")
    if pid is None or str(pid) == "":
        pid = "sha1:" + hashlib.sha1(doc.page_content.encode("utf-8")).hexdigest()[:16]
    title = meta.get("title")
    for key in RESERVED:
        meta.pop(key, None)
    return Passage(
        id=str(pid), title="" if title is None else str(title), text=doc.page_content, metadata=json_metadata(meta)
    )


def document_score(doc: Document, rank: int) -> float:
    """The document's own score (``metadata["score"]`` or ``["relevance_score"]``) if it has a
    finite one, else ``1 / rank`` (retrievers that return no scores still rank)."""
    for key in ("score", "relevance_score"):
        value = (doc.metadata or {}).get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return 1.0 / rank


def to_document(passage: Passage | StepPassage, *, score: float | None = None, rank: int | None = None) -> Document:
    """A passage (or a traced passage, which knows its score and rank) as a ``Document``."""
    meta: dict[str, Any] = dict(passage.metadata)
    meta["id"] = passage.id
    meta["title"] = passage.title
    if isinstance(passage, StepPassage):
        score = passage.score if score is None else score
        rank = passage.rank if rank is None else rank
    if score is not None:
        meta["score"] = score
    if rank is not None:
        meta["rank"] = rank
    return Document(page_content=passage.text, metadata=meta, id=passage.id)


__all__ = ["RESERVED", "document_score", "json_metadata", "to_document", "to_passage"]
