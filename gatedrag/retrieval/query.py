"""Query formulation from a doubtful sentence.

Example:
    >>> from gatedrag.retrieval.query import truncate_words
    >>> truncate_words("a b c d", 2)
    'c d'
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gatedrag.types import TokenStep

_WORD = re.compile(r"\S+")


def masked_text(tokens: Sequence[TokenStep], masked: set[int]) -> str:
    """The sentence with the tokens at ``masked`` indices removed (FLARE's implicit query)."""
    text = "".join(t.text if i not in masked else (" " if t.text[:1].isspace() else "") for i, t in enumerate(tokens))
    return re.sub(r"\s+", " ", text).strip()


def truncate_words(text: str, max_words: int, *, keep: str = "last") -> str:
    """Keep at most ``max_words`` whitespace-separated words, the last ones by default (as
    DRAGIN and QuCo-RAG keep the last 64 tokens of a query)."""
    parts = _WORD.findall(text)
    if len(parts) <= max_words:
        return " ".join(parts)
    return " ".join(parts[-max_words:] if keep == "last" else parts[:max_words])


def build_query(
    question: str,
    tokens: Sequence[TokenStep],
    masked: set[int],
    *,
    max_words: int = 64,
    include_question: bool = False,
    previous: str = "",
) -> str:
    """The retrieval query for a doubtful sentence: the sentence with its doubtful tokens masked,
    optionally after the question and after ``previous`` (earlier sentences of the answer),
    truncated to its last ``max_words`` words. Falls back to the question when masking leaves
    nothing.

    >>> build_query("Who?", [], set(), previous="X was born in Y.")
    'Who? X was born in Y.'
    """
    sentence = masked_text(tokens, masked)
    parts = [question] if include_question or not sentence else []
    parts += [p for p in (previous.strip(), sentence) if p]
    return truncate_words(" ".join(parts), max_words)


__all__ = ["build_query", "masked_text", "truncate_words"]
