"""A client for the Infini-gram HTTP API: the hosted one or ``gatedrag corpus serve``.

The hosted API (https://api.infini-gram.io/, needs internet) serves trillion-token indexes such as
QuCo-RAG's ``v4_olmo-2-0325-32b-instruct_llama``; ``gatedrag corpus serve`` serves a local index in
the same format. Requests are retried with exponential backoff on network failures, HTTP 429/5xx
and ``error`` responses from the server side; after ``retries`` attempts (each bounded by
``timeout`` seconds) a :class:`~gatedrag.errors.CorpusBackendError` is raised, never a hang.
Queries over the API's caps are refused before sending (:class:`~gatedrag.errors.CorpusQueryError`).

String queries: a term holding the words ``AND``/``OR`` would be read as an operator, so those
words are lower-cased in it (the count is then of the lower-cased phrase, noted on the result);
give ``tokenizer=`` (the index's tokenizer) to send token ids instead and count the exact phrase.
``cooccurrence="document"`` asks ``gatedrag corpus serve`` for exact same-document co-occurrence
counts (an extension the hosted API does not have).

Example::

    from gatedrag.corpus.client import InfiniGramClient
    api = InfiniGramClient("http://127.0.0.1:8737/", index="hotpotqa")
    api.count("Ed Wood").count
    api.cooccurrence(["Ed Wood", "Tim Burton"], window=100).count
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any, Literal

from gatedrag.corpus.api import escape_term
from gatedrag.corpus.base import API_MAX_CLAUSE_FREQ, API_MAX_DIFF_TOKENS, API_MAX_TOKENS, check_terms
from gatedrag.corpus.tokenizer import IndexTokenizer
from gatedrag.errors import CorpusBackendError, CorpusQueryError
from gatedrag.types import CorpusCount

HOSTED_URL = "https://api.infini-gram.io/"
QUCO_INDEX = "v4_olmo-2-0325-32b-instruct_llama"


class _TransientError(Exception):
    pass


class InfiniGramClient:
    """A :class:`~gatedrag.corpus.base.CorpusStats` over the Infini-gram HTTP API."""

    def __init__(
        self,
        url: str = HOSTED_URL,
        *,
        index: str | None = QUCO_INDEX,
        window: int = API_MAX_DIFF_TOKENS,
        max_clause_freq: int = API_MAX_CLAUSE_FREQ,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        tokenizer: IndexTokenizer | None = None,
        cooccurrence: Literal["cnf", "document"] = "cnf",
    ):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise CorpusQueryError(f"corpus API url must be http(s)://host[:port]/path, got {url!r}")
        if not 1 <= window <= API_MAX_DIFF_TOKENS:
            raise CorpusQueryError(f"window must be 1..{API_MAX_DIFF_TOKENS} tokens for the API, got {window}")
        if not 1 <= max_clause_freq <= API_MAX_CLAUSE_FREQ:
            raise CorpusQueryError(
                f"max_clause_freq must be 1..{API_MAX_CLAUSE_FREQ} for the API, got {max_clause_freq}"
            )
        if timeout <= 0 or retries < 1 or backoff < 0:
            raise CorpusQueryError("timeout must be > 0, retries >= 1 and backoff >= 0")
        self.url, self._parsed = url, parsed
        self.index, self.window, self.max_clause_freq = index, window, max_clause_freq
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.tokenizer = tokenizer
        if cooccurrence not in ("cnf", "document"):
            raise CorpusQueryError(f"cooccurrence must be cnf or document, got {cooccurrence!r}")
        self.cooccurrence_mode = cooccurrence
        self.name = f"api:{url}" + (f"#{index}" if index else "")
        self._local = threading.local()
        self._total: int | None = None

    # -- transport --------------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
            conn = cls(self._parsed.hostname, self._parsed.port, timeout=self.timeout)  # type: ignore[arg-type]
            self._local.conn = conn
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _post_once(self, payload: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(payload).encode("utf-8")
        try:
            conn = self._connection()
            conn.request("POST", self._parsed.path or "/", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as err:
            self._drop_connection()
            raise _TransientError(f"{type(err).__name__}: {err}") from None
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if response.status == 429 or response.status >= 500:
            message = data.get("error") if isinstance(data, dict) else raw[:200].decode("utf-8", "replace")
            raise _TransientError(f"HTTP {response.status}: {message}")
        if not isinstance(data, dict):
            raise _TransientError(f"HTTP {response.status}: the response is not a JSON object")
        if "error" in data:
            if 400 <= response.status < 500:
                raise CorpusQueryError(f"corpus API refused the query: {data['error']}")
            raise _TransientError(str(data["error"]))  # the hosted API reports server trouble as 200 + error
        return data

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        """POST one API request; retried with backoff, then :class:`CorpusBackendError`."""
        if self.index is not None:
            payload = {"index": self.index, **payload}
        last = ""
        for attempt in range(self.retries):
            try:
                return self._post_once(payload)
            except _TransientError as err:
                last = str(err)
                if attempt + 1 < self.retries:
                    time.sleep(self.backoff * (2**attempt) * (0.5 + random.random()))
        raise CorpusBackendError(f"corpus API {self.url} failed after {self.retries} attempts: {last}")

    # -- CorpusStats ------------------------------------------------------------------------------
    def _query(self, terms: list[str]) -> tuple[dict[str, Any], str | None]:
        if self.tokenizer is not None:
            ids = [self.tokenizer.encode(t) for t in terms]
            if any(not i for i in ids):
                raise CorpusQueryError(f"a term of {terms!r} tokenises to nothing")
            if sum(len(i) for i in ids) > API_MAX_TOKENS:
                raise CorpusQueryError(f"the query is longer than the API's {API_MAX_TOKENS} tokens")
            return {"query_ids": ids[0] if len(ids) == 1 else [[i] for i in ids]}, None
        escaped = [escape_term(t) for t in terms]
        note = "AND/OR words lower-cased in a term" if any(changed for _, changed in escaped) else None
        return {"query": " AND ".join(t for t, _ in escaped)}, note

    def total_tokens(self) -> int:
        if self._total is None:
            self._total = int(self.request({"query_type": "count", "query": ""})["count"])
        return self._total

    def _count(self, terms: list[str], window: int | None, max_clause_freq: int | None) -> CorpusCount:
        query, note = self._query(terms)
        payload: dict[str, Any] = {"query_type": "count", **query}
        if len(terms) > 1:
            payload["max_diff_tokens"] = window or self.window
            payload["max_clause_freq"] = max_clause_freq or self.max_clause_freq
            if self.cooccurrence_mode == "document":  # an extension of `gatedrag corpus serve`
                payload["cooccurrence"] = "document"
        t0 = time.perf_counter()
        data = self.request(payload)
        try:
            count = int(data["count"])
        except (KeyError, TypeError, ValueError):
            raise CorpusBackendError(f"corpus API {self.url} answered without a count: {str(data)[:200]}") from None
        return CorpusCount(
            terms=terms,
            count=count,
            approx=bool(data.get("approx", False)),
            window=(window or self.window) if len(terms) > 1 else None,
            total_tokens=self._total,
            backend=self.name,
            latency_ms=round((time.perf_counter() - t0) * 1e3, 3),
            note=note,
        )

    def count(self, phrase: str) -> CorpusCount:
        return self._count(check_terms([phrase], max_terms=1), None, None)

    def cooccurrence(
        self, terms: Sequence[str], *, window: int | None = None, max_clause_freq: int | None = None
    ) -> CorpusCount:
        if window is not None and not 1 <= window <= API_MAX_DIFF_TOKENS:
            raise CorpusQueryError(f"window must be 1..{API_MAX_DIFF_TOKENS} tokens for the API, got {window}")
        return self._count(check_terms(terms), window, max_clause_freq)

    def close(self) -> None:
        self._drop_connection()


__all__ = ["HOSTED_URL", "QUCO_INDEX", "InfiniGramClient"]
