"""Claims in, validated: bad claims and malformed lines are refused with where and why."""

from __future__ import annotations

import pytest

from gatedrag.errors import InputError
from gatedrag.factcheck.claims import parse_claims, read_claims, validate_claim


@pytest.mark.parametrize(("claim", "why"), [("", "empty"), ("   ", "empty"), (None, "string"), (3, "string")])
def test_bad_claims_are_refused(claim, why):
    with pytest.raises(InputError, match=why):
        validate_claim(claim)


def test_an_oversized_claim_is_refused():
    with pytest.raises(InputError, match="at most 50"):
        validate_claim("x" * 51, max_chars=50)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("{nope", "line 2 is not JSON"),
        ('["a", "b"]', 'line 2 needs an object with "id" and "claim"'),
        ('{"id": 1}', 'line 2 needs an object with "id" and "claim"'),
        ('{"id": 1, "claim": ""}', "line 2: the claim is empty"),
        ('{"id": true, "claim": "A."}', "line 2: the id must be"),
        ('{"id": "a", "claim": "B."}', "line 2: id 'a' was already used"),
    ],
)
def test_a_malformed_line_names_its_number(line, why):
    with pytest.raises(InputError, match=why):
        parse_claims(['{"id": "a", "claim": "A."}', line])


def test_a_claims_file_keeps_the_other_fields_and_refuses_what_is_not_one(tmp_path):
    path = tmp_path / "claims.jsonl"
    path.write_text('{"id": 1, "claim": " A. ", "label": "SUPPORT"}\n\n{"id": "b2", "claim": "B."}\n')
    claims = read_claims(path)
    assert [(c.id, c.claim, c.fields) for c in claims] == [("1", "A.", {"label": "SUPPORT"}), ("b2", "B.", {})]
    with pytest.raises(InputError, match="no claims file"):
        read_claims(tmp_path / "missing.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="holds no claims"):
        read_claims(tmp_path / "empty.jsonl")
    (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InputError, match="not UTF-8"):
        read_claims(tmp_path / "binary.jsonl")
