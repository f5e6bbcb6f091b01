"""Claims to check: one validated claim, or a JSONL file of them (``{"id", "claim"}`` a line, other
fields kept for the output record); a bad claim or a malformed line is an
:class:`~gatedrag.errors.InputError` that names it (the file's line number), and nothing is read past it.

Example:
    >>> from gatedrag.factcheck.claims import parse_claims, validate_claim
    >>> validate_claim("  Aspirin lowers the risk of heart attack. ")
    'Aspirin lowers the risk of heart attack.'
    >>> [c.id for c in parse_claims(['{"id": 7, "claim": "A."}', '', '{"id": "x", "claim": "B.", "label": "SUPPORT"}'])]
    ['7', 'x']
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.errors import InputError
from gatedrag.text import require_unicode

MAX_CLAIM_CHARS = 2000
"""Longer claims are refused: a claim is a sentence or two, not a document."""


class Claim(BaseModel):
    """A claim to check: its id (as text), the claim, and the input record's other fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str
    claim: str
    fields: dict[str, Any] = Field(default_factory=dict)


def validate_claim(claim: object, *, max_chars: int = MAX_CLAIM_CHARS) -> str:
    """The stripped claim, or :class:`InputError` saying what is wrong with it."""
    if not isinstance(claim, str):
        raise InputError(f"a claim must be a string, got {type(claim).__name__}")
    text = claim.strip()
    if not text:
        raise InputError("the claim is empty: give a statement to check")
    if len(text) > max_chars:
        raise InputError(f"the claim is {len(text)} characters; at most {max_chars} are accepted: check one statement")
    return require_unicode(text, "the claim")


def parse_claims(lines: Iterable[str], *, source: str = "claims", max_chars: int = MAX_CLAIM_CHARS) -> list[Claim]:
    """Claims from JSONL lines (blank lines skipped); ids must be unique."""
    claims: list[Claim] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(f'{where} is not JSON ({err.msg}): one {{"id", "claim"}} object a line') from None
        if not isinstance(record, dict) or "id" not in record or "claim" not in record:
            raise InputError(f'{where} needs an object with "id" and "claim"')
        if not isinstance(record["id"], str | int) or isinstance(record["id"], bool):
            raise InputError(f"{where}: the id must be a string or an integer")
        cid = str(record["id"])
        if cid in seen:
            raise InputError(f"{where}: id {cid!r} was already used (ids must be unique)")
        try:
            text = validate_claim(record["claim"], max_chars=max_chars)
        except InputError as err:
            raise InputError(f"{where}: {err}") from None
        seen.add(cid)
        claims.append(Claim(id=cid, claim=text, fields={k: v for k, v in record.items() if k not in ("id", "claim")}))
    return claims


def read_claims(path: str | Path, *, max_chars: int = MAX_CLAIM_CHARS) -> list[Claim]:
    """The claims of a JSONL file (see :func:`parse_claims`)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"no claims file at {path}") from None
    except UnicodeDecodeError:
        raise InputError(f'{path} is not UTF-8 text (expected JSONL: one {{"id", "claim"}} object a line)') from None
    claims = parse_claims(text.splitlines(), source=str(path), max_chars=max_chars)
    if not claims:
        raise InputError(f"{path} holds no claims")
    return claims


__all__ = ["MAX_CLAIM_CHARS", "Claim", "parse_claims", "read_claims", "validate_claim"]
