"""The Infini-gram API's request/response format, answered from a local index.

Requests are JSON objects as the hosted API (``https://api.infini-gram.io/``) takes them::

    {"index": "my-corpus", "query_type": "count", "query": "Ed Wood AND Tim Burton",
     "max_diff_tokens": 100, "max_clause_freq": 500000}

* ``query`` is a string (terms joined by `` AND `` / `` OR ``, OR binding tighter than AND) or
  ``query_ids`` a list of token ids, or a triply nested list for a CNF (AND over clauses, OR over
  the n-grams in a clause). ``corpus`` is accepted as an older name of ``index``.
* ``query_type`` is one of ``count``, ``prob``, ``ntd``, ``infgram_prob``, ``infgram_ntd``,
  ``search_docs``.
* A success carries ``token_ids``, ``tokens`` and ``latency`` (engine milliseconds) plus the
  fields of its type (``count`` and ``approx``; ``prob``, ``prompt_cnt``, ``cont_cnt``;
  ``result_by_token_id``; ``documents``). A failure is ``{"error": "..."}`` and nothing else.
* Extension (this server only): ``"cooccurrence": "document"`` on an AND count answers with the
  exact same-document count of :meth:`LocalIndex.count_in_documents` instead of Infini-gram's CNF
  count (which drops matches near document edges on short passages).
* The hosted API's caps hold: 1000 characters or 500 tokens per query, at most 4 clauses of at most
  4 terms, ``max_clause_freq`` <= 500000 and ``max_diff_tokens`` <= 1000 (a server may raise the
  last two for its own index).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from gatedrag.corpus.base import (
    API_MAX_CHARS,
    API_MAX_CLAUSE_FREQ,
    API_MAX_CLAUSES,
    API_MAX_DIFF_TOKENS,
    API_MAX_TERMS_PER_CLAUSE,
    API_MAX_TOKENS,
)
from gatedrag.corpus.local import LocalIndex
from gatedrag.errors import GatedRAGError
from gatedrag.text import holds_lone_surrogate

QUERY_TYPES = ("count", "prob", "ntd", "infgram_prob", "infgram_ntd", "search_docs")


class APIRequestError(ValueError):
    """A request the API answers with ``{"error": ...}`` (status 400)."""


@dataclass(frozen=True)
class Caps:
    """Limits a server enforces (the hosted API's by default)."""

    max_chars: int = API_MAX_CHARS
    max_tokens: int = API_MAX_TOKENS
    max_clauses: int = API_MAX_CLAUSES
    max_terms_per_clause: int = API_MAX_TERMS_PER_CLAUSE
    max_clause_freq: int = API_MAX_CLAUSE_FREQ
    max_diff_tokens: int = API_MAX_DIFF_TOKENS
    max_support: int = 1000
    max_docs: int = 10


def split_cnf(query: str) -> list[list[str]]:
    """``"a OR b AND c"`` -> ``[["a", "b"], ["c"]]`` (OR binds tighter than AND, as the API's)."""
    return [[term.strip() for term in clause.split(" OR ")] for clause in query.split(" AND ")]


def escape_term(term: str) -> tuple[str, bool]:
    """A term safe to put in an API query string: an ``AND``/``OR`` word inside it would be parsed
    as an operator, so it is lower-cased. Returns the term and whether it changed."""
    words = term.split(" ")
    safe = [w.lower() if w in ("AND", "OR") else w for w in words]
    return " ".join(safe), safe != words


def _int(payload: dict[str, Any], key: str, default: int, cap: int) -> int:
    value = payload.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise APIRequestError(f"{key} must be a positive integer")
    if value > cap:
        raise APIRequestError(f"{key} must be at most {cap}")
    return value


def _ids(value: Any, caps: Caps) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value):
        raise APIRequestError("query_ids must be a list of non-negative integers or a triply nested list of them")
    if len(value) > caps.max_tokens:
        raise APIRequestError(f"the query has {len(value)} tokens; the limit is {caps.max_tokens}")
    return value


class QueryHandler:
    """Answers API requests from one :class:`LocalIndex` (thread-safe; used by the HTTP server)."""

    def __init__(self, index: LocalIndex, *, name: str, caps: Caps | None = None):
        self.index, self.name, self.caps = index, name, caps or Caps()

    def info(self) -> dict[str, Any]:
        m = self.index.manifest
        return {
            "index": self.name,
            "documents": m.documents,
            "tokens": m.tokens,
            "tokenizer": m.tokenizer.name,
            "tokenizer_fingerprint": m.tokenizer.fingerprint,
            "default_max_diff_tokens": self.index.window,
            "query_types": list(QUERY_TYPES),
        }

    def _tokens(self, ids: list[int]) -> list[str]:
        return [self.index.tokenizer.decode([i]) for i in ids]

    def _encode(self, text: str) -> list[int]:
        if len(text) > self.caps.max_chars:
            raise APIRequestError(f"the query has {len(text)} characters; the limit is {self.caps.max_chars}")
        ids = self.index.tokenizer.encode(text) if text.strip() else []
        if len(ids) > self.caps.max_tokens:
            raise APIRequestError(f"the query has {len(ids)} tokens; the limit is {self.caps.max_tokens}")
        return ids

    def _parse(self, payload: dict[str, Any]) -> tuple[list[int] | None, list[list[list[int]]] | None]:
        """(flat ids, None) for an n-gram query or (None, cnf) for an AND/OR query."""
        if "query_ids" in payload and payload["query_ids"] is not None:
            q = payload["query_ids"]
            if isinstance(q, list) and q and isinstance(q[0], list):
                cnf = [[_ids(term, self.caps) for term in clause] if isinstance(clause, list) else [] for clause in q]
                self._check_cnf(cnf)
                return None, cnf
            return _ids(q, self.caps), None
        query = payload.get("query")
        if not isinstance(query, str):
            raise APIRequestError("the request needs 'query' (a string) or 'query_ids' (a list of token ids)")
        if " AND " in query or " OR " in query:
            cnf = [[self._encode(term) for term in clause] for clause in split_cnf(query)]
            self._check_cnf(cnf)
            return None, cnf
        return self._encode(query), None

    def _check_cnf(self, cnf: list[list[list[int]]]) -> None:
        if not cnf or len(cnf) > self.caps.max_clauses:
            raise APIRequestError(f"a CNF query takes 1 to {self.caps.max_clauses} clauses")
        for clause in cnf:
            if not clause or len(clause) > self.caps.max_terms_per_clause:
                raise APIRequestError(f"a CNF clause takes 1 to {self.caps.max_terms_per_clause} terms")
            if any(not term for term in clause):
                raise APIRequestError("a CNF term is empty (or tokenises to nothing)")

    def handle(self, payload: Any) -> dict[str, Any]:
        """The response to one request (``{"error": ...}`` for a bad one; never raises for input)."""
        try:
            return self._handle(payload)
        except APIRequestError as err:
            return {"error": str(err)}
        except GatedRAGError as err:
            return {"error": str(err)}

    def _handle(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise APIRequestError("the request body must be a JSON object")
        if holds_lone_surrogate(payload):
            raise APIRequestError("the request holds text that is not valid Unicode (a lone surrogate escape)")
        index = payload.get("index", payload.get("corpus"))
        if index is not None and index != self.name:
            raise APIRequestError(f"unknown index {index!r}; this server has {self.name!r}")
        qtype = payload.get("query_type")
        if qtype not in QUERY_TYPES:
            raise APIRequestError(f"query_type must be one of {', '.join(QUERY_TYPES)}")
        ids, cnf = self._parse(payload)
        engine, c = self.index.engine, self.caps
        t0 = time.perf_counter()
        if qtype == "count":
            if cnf is not None:
                window = _int(payload, "max_diff_tokens", self.index.window, c.max_diff_tokens)
                freq = _int(payload, "max_clause_freq", self.index.max_clause_freq, c.max_clause_freq)
                mode = payload.get("cooccurrence", "cnf")
                if mode not in ("cnf", "document"):
                    raise APIRequestError("cooccurrence must be cnf or document")
                if mode == "document":
                    if any(len(clause) != 1 for clause in cnf):
                        raise APIRequestError("document co-occurrence takes one term per clause (no OR)")
                    out = self.index.count_in_documents([clause[0] for clause in cnf], window)
                else:
                    out = self.index.count_cnf_ids(cnf, window=window, max_clause_freq=freq)
            else:
                out = self.index.count_ids(ids or [])
            result: dict[str, Any] = {"count": int(out["count"]), "approx": bool(out.get("approx", False))}
        elif cnf is not None and qtype != "search_docs":
            raise APIRequestError(f"query_type {qtype} takes an n-gram, not an AND/OR query")
        elif qtype in ("prob", "infgram_prob"):
            if not ids:
                raise APIRequestError(f"query_type {qtype} needs a non-empty query")
            call = engine.prob if qtype == "prob" else engine.infgram_prob
            out = self.index._checked(call(prompt_ids=ids[:-1], cont_id=ids[-1]))
            result = {k: out[k] for k in ("prob", "prompt_cnt", "cont_cnt") if k in out}
            if "suffix_len" in out:
                result["longest_suffix"] = self.index.tokenizer.decode(ids[:-1][len(ids) - 1 - out["suffix_len"] :])
        elif qtype in ("ntd", "infgram_ntd"):
            support = _int(payload, "max_support", c.max_support, c.max_support)
            call = engine.ntd if qtype == "ntd" else engine.infgram_ntd
            out = self.index._checked(call(prompt_ids=ids or [], max_support=support))
            result = {
                "prompt_cnt": out["prompt_cnt"],
                "approx": bool(out.get("approx", False)),
                "result_by_token_id": {
                    str(tid): {"token": self.index.tokenizer.decode([tid]), **r}
                    for tid, r in out["result_by_token_id"].items()
                },
            }
        else:  # search_docs
            maxnum = _int(payload, "maxnum", 1, c.max_docs)
            disp = _int(payload, "max_disp_len", 1000, 5000)
            if cnf is not None:
                out = self.index._checked(engine.search_docs_cnf(cnf=cnf, maxnum=maxnum, max_disp_len=disp))
            else:
                out = self.index._checked(engine.search_docs(input_ids=ids or [], maxnum=maxnum, max_disp_len=disp))
            result = {
                "cnt": out["cnt"],
                "approx": bool(out.get("approx", False)),
                "documents": [
                    {
                        "doc_ix": d["doc_ix"],
                        "doc_len": d["doc_len"],
                        "metadata": json.loads(d["metadata"]) if d.get("metadata") else {},
                        "text": self.index.tokenizer.decode(d["token_ids"]),
                    }
                    for d in out.get("documents", [])
                ],
            }
        latency = round((time.perf_counter() - t0) * 1e3, 3)
        if cnf is not None:
            token_info: dict[str, Any] = {
                "token_ids": cnf,
                "tokens": [[self._tokens(term) for term in clause] for clause in cnf],
            }
        else:
            token_info = {"token_ids": ids, "tokens": self._tokens(ids or [])}
        return {**result, **token_info, "latency": latency}


__all__ = ["QUERY_TYPES", "APIRequestError", "Caps", "QueryHandler", "escape_term", "split_cnf"]
