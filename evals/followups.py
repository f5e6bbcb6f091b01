"""Two-turn conversations from MuSiQue's ``question_decomposition``: a first question, then a
follow-up that refers to its answer the way a person would, for the chat evaluation.

For a 2-hop MuSiQue question the decomposition gives sub-question 1 (its answer is the bridge
entity) and sub-question 2, which names that entity ``#1``. Turn 1 is sub-question 1 (a knowledge-base
style ``"Bubye River >> country"`` is written out as ``"What is the country of Bubye River?"``).
Turn 2 is sub-question 2 with ``#1`` replaced by a reference to turn 1's answer, chosen from how
turn 1 asks (:func:`reference_for`):

- ``What/Which <noun> ...`` (within its first words) -> ``that <noun>`` ("What company published X?"
  -> "that company", "In what institution ..." -> "that institution");
- ``A >> relation`` -> ``that <relation's last noun>`` ("Bubye River >> country" -> "that country";
  "member of sports team" -> "that team"), or ``that place`` for a place relation ("place of birth",
  "located in the administrative territorial entity"), ``that school`` for "educated at", ``that
  person`` for a kin relation ("father", "spouse"), or ``it`` if it has no noun ("part of");
- ``Who ...`` -> ``that person``; ``Where ...`` -> ``that place``; ``When ...`` -> ``that time``;
- anything else -> ``it``.

The fully written-out follow-up is sub-question 2 with ``#1`` replaced by the gold bridge answer;
the gold answer of turn 2 is the MuSiQue answer (with its aliases).

Example:
    >>> reference_for("What company published Journal of Psychotherapy Integration?")
    'that company'
    >>> reference_for("Bubye River >> country"), reference_for("Who wrote Hamlet?")
    ('that country', 'that person')
    >>> write_turn("Bubye River >> country")
    'What is the country of Bubye River?'
    >>> refer("Who was the first president of #1 ?", "that company")
    'Who was the first president of that company?'
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from .datasets import _aliases, _dedupe, _read_json, _records

_WH_NOUN = re.compile(r"^(?:\w+\s+){0,2}?(?:what|which)\s+([a-z]+)\b", re.IGNORECASE)
_NOT_NOUNS = {
    "is",
    "was",
    "are",
    "were",
    "does",
    "did",
    "do",
    "has",
    "had",
    "can",
    "could",
    "will",
    "would",
    "of",
    "kind",
}
_PLACES = ("place", "location", "located", "territorial", "headquarters", "residence", "broadcast")
_KIN = {"father", "mother", "spouse", "sibling", "child", "parent"}
_PLACE_NOUNS = ("country", "state", "city", "county", "continent", "river", "island")
_RELATION_STOP = {
    "of",
    "in",
    "to",
    "at",
    "by",
    "on",
    "with",
    "from",
    "or",
    "next",
    "the",
    "a",
    "and",
    "applies",
    "shares",
}
_STARTS = {
    "who": "that person",
    "whom": "that person",
    "whose": "that person",
    "where": "that place",
    "when": "that time",
}


class Conversation(BaseModel):
    """A two-turn conversation built from one MuSiQue question (see the module doc)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str
    first: str
    """Turn 1: the question whose answer the follow-up refers to."""
    first_answers: list[str]
    """Gold answers of turn 1 (the bridge entity and its aliases, where MuSiQue gives them)."""
    follow_up: str
    """Turn 2 as a person would write it (a reference to turn 1's answer)."""
    written_out: str
    """Turn 2 with the bridge entity written in."""
    answers: list[str]
    """Gold answers of turn 2 (the MuSiQue answer and its aliases)."""
    reference: str
    """The words that stand for turn 1's answer in the follow-up."""


def write_turn(question: str) -> str:
    """A sub-question as a person would ask it (``"A >> relation"`` -> ``"What is the relation of A?"``)."""
    question = " ".join(question.split())
    if ">>" in question:
        subject, relation = (p.strip() for p in question.split(">>", 1))
        return f"What is the {relation} of {subject}?"
    question = re.sub(r"\s+\?$", "?", question)
    question = question[0].upper() + question[1:] if question else question
    return question if question.endswith("?") else question + "?"


def reference_for(first: str) -> str:
    """How a follow-up refers to the answer of ``first`` (the rules of the module doc)."""
    first = " ".join(first.split())
    if ">>" in first:
        relation = first.split(">>", 1)[1].lower().split()
        nouns = [w for w in relation if w not in _RELATION_STOP and w not in ("border", "body", "water")]
        if named := [w for w in relation if w in _PLACE_NOUNS]:
            return f"that {named[0]}"
        if any(w.startswith(_PLACES) for w in relation) or {"birth", "death"} & set(relation):
            return "that place"
        if "educated" in relation:
            return "that school"
        if _KIN & set(relation):
            return "that person"
        return f"that {nouns[-1]}" if nouns else "it"
    m = _WH_NOUN.match(first)
    if m and m.group(1).lower() not in _NOT_NOUNS:
        return f"that {m.group(1).lower()}"
    word = first.split()[0].lower() if first.split() else ""
    return _STARTS.get(word, "it")


def refer(second: str, reference: str) -> str:
    """``second`` with ``#1`` (and an article before it) replaced by ``reference``, written as a question."""
    return write_turn(re.sub(r"\b(?:the|The) #1", reference, second).replace("#1", reference))


def load_conversations(path: Path, *, limit: int | None = None) -> list[Conversation]:
    """The 2-hop MuSiQue questions of ``path`` (JSONL, official format) as conversations, in file order."""
    rows = _records(_read_json(path, "musique"), path, "musique", ["id", "question_decomposition", "answer"])
    out: list[Conversation] = []
    for r in rows:
        steps = r["question_decomposition"]
        if len(steps) != 2 or "#1" not in steps[1]["question"]:
            continue
        reference = reference_for(steps[0]["question"])
        bridge = str(steps[0]["answer"]).strip()
        out.append(
            Conversation(
                id=r["id"],
                first=write_turn(steps[0]["question"]),
                first_answers=[bridge],
                follow_up=refer(steps[1]["question"], reference),
                written_out=refer(steps[1]["question"], bridge),
                answers=_dedupe([r["answer"], *_aliases(r.get("answer_aliases"))]),
                reference=reference,
            )
        )
        if limit is not None and len(out) >= limit:
            break
    return out


__all__ = ["Conversation", "load_conversations", "refer", "reference_for", "write_turn"]
