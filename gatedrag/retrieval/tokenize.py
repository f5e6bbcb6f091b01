"""The word tokenizer shared by the BM25 backends (so that they index the same terms)."""

from __future__ import annotations

from collections.abc import Sequence

import bm25s

from gatedrag.types import Passage

STOPWORDS = "en"


def passage_text(p: Passage) -> str:
    """What gets indexed: title and text (DRAGIN/QuCo search both fields)."""
    return f"{p.title}\n{p.text}" if p.title else p.text


def words(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased word tokens without English stopwords, as bm25s tokenizes them."""
    return bm25s.tokenize(list(texts), stopwords=STOPWORDS, return_ids=False, show_progress=False)


__all__ = ["STOPWORDS", "passage_text", "words"]
