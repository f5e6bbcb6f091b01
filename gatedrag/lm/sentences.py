"""Sentence boundaries in a stream of generated text.

A sentence ends at ``.``, ``!`` or ``?`` (plus closing quotes/brackets) once the *following*
whitespace has been generated, so that "3.5" or "U.S." are not cut, or at a newline. Common
abbreviations and single-letter initials ("J. K. Rowling") do not end a sentence.

Example:
    >>> from gatedrag.lm.sentences import find_sentence_end
    >>> find_sentence_end("Paris is in France. It")
    19
    >>> find_sentence_end("Dr. Smith was born in 1.5") is None
    True
"""

from __future__ import annotations

import re

ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc e.g i.e u.s u.k inc ltd co corp mt ft gen col lt sgt capt cmdr adm gov "
    "sen rep rev fr jan feb mar apr jun jul aug sep sept oct nov dec approx dept est al ca cf".split()
)
NUMBER_ABBREVIATIONS = frozenset("no nos vol fig pp art".split())
"""Abbreviations only when a number follows ("No. 5"); otherwise "no." ends a sentence."""
_NUMBER_NEXT = re.compile(r"\s*\d")

_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*(?=\s)|\n")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    """True if the ``.`` at index ``dot`` closes an abbreviation or an initial."""
    m = _WORD_BEFORE.search(text, 0, dot)
    if m is None:
        return False
    word = m.group(1)
    if len(word) == 1 and word.isupper():
        return True  # an initial: "J. K. Rowling"
    key = word.lower().rstrip(".")
    if key in NUMBER_ABBREVIATIONS:
        return _NUMBER_NEXT.match(text, dot + 1) is not None
    return key in ABBREVIATIONS


def find_sentence_end(text: str, start: int = 0) -> int | None:
    """Index just past the first sentence terminator in ``text[start:]``, or ``None``.

    The returned index points at the whitespace (or newline) that follows the sentence; the
    newline itself, when it is the boundary, belongs to the sentence.
    """
    for m in _END.finditer(text, start):
        if m.group(0) == "\n":
            return m.end()
        if m.group(0)[0] == "." and _is_abbreviation(text, m.start()):
            continue
        return m.end()
    return None


def first_stop(text: str, stops: tuple[str, ...], start: int = 0) -> int | None:
    """Index of the earliest occurrence of any stop string in ``text[start:]``, or ``None``."""
    found = [i for s in stops if s and (i := text.find(s, start)) >= 0]
    return min(found) if found else None


__all__ = ["ABBREVIATIONS", "NUMBER_ABBREVIATIONS", "find_sentence_end", "first_stop"]
