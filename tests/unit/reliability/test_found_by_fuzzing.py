"""The crashes the fuzzing campaign found, each pinned as the typed refusal it now is."""

from __future__ import annotations

import json
import socket
import time

import pytest

from gatedrag.config import load_config
from gatedrag.errors import ConfigError, CorpusError, DatasetError, InputError
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("c.yaml", b"\xff\xfe not utf-8", "not UTF-8"),
        ("c.yaml", b"gate:\n  rules:\n    - signal: [a, b]\n", "unknown signal"),
        ("c.yaml", b'prompt: "\\ud800"\n', "lone surrogate"),
    ],
)
def test_bad_config_files_are_config_errors(tmp_path, name, data, needle):
    (tmp_path / name).write_bytes(data)
    with pytest.raises(ConfigError, match=needle):
        load_config(tmp_path / name)


def test_a_corpus_with_no_indexable_word_is_a_corpus_error():
    with pytest.raises(CorpusError, match="none of the 2 passages has a word BM25 can index"):
        BM25Retriever.build([Passage(id="1", text="𤟇"), Passage(id="2", text="the of")])


def test_dataset_records_of_the_wrong_types_are_dataset_errors(tmp_path):
    from gatedrag.evals.datasets import load_hotpotqa, load_pubmedqa

    (tmp_path / "h.json").write_text(json.dumps([{"_id": "1", "question": [None], "answer": "x", "context": []}]))
    with pytest.raises(DatasetError, match="wrong type"):
        load_hotpotqa(tmp_path / "h.json")
    record = {"QUESTION": "Why?", "CONTEXTS": [], "final_decision": None}
    (tmp_path / "p.json").write_text(json.dumps({"1": record}))
    with pytest.raises(DatasetError, match="wrong type"):
        load_pubmedqa(tmp_path / "p.json")


def test_unicode_that_is_not_text_and_misshapen_batches_are_input_errors(tiny_lm):
    rag = GatedRAG(tiny_lm, None)
    with pytest.raises(InputError, match="lone surrogate"):
        rag.ask("Who \ud800?")
    with pytest.raises(InputError, match="lone surrogate"):
        rag.ask("Who?", passages=[{"id": "1", "title": "", "text": "x\udfff"}])
    with pytest.raises(InputError, match="one list"):
        rag.batch(["Who?"], passages=7.5)  # type: ignore[arg-type]


def test_a_retriever_without_the_protocol_is_refused_when_built(tiny_lm):
    class Nameless:
        def retrieve(self, queries, k):
            return [[] for _ in queries]

    with pytest.raises(ConfigError, match="not a retriever"):
        GatedRAG(tiny_lm, Nameless())  # type: ignore[arg-type]


def test_the_openai_server_answers_bad_lengths_and_unknown_paths_with_error_objects(tiny_lm):
    from fastapi.testclient import TestClient

    from gatedrag.serve.app import create_app

    with TestClient(create_app(tiny_lm, model_name="tiny"), raise_server_exceptions=False) as client:
        bad = client.post("/v1/completions", content=b"{}", headers={"Content-Length": "abc"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_content_length"
        for response in (client.post("/v1/nothing", json={}), client.post("/v1/models", json={})):
            assert response.status_code in (404, 405) and response.json()["error"]["message"]


@pytest.mark.enable_socket
def test_the_corpus_server_drops_a_client_that_stops_sending(tmp_path, monkeypatch):
    pytest.importorskip("infini_gram.engine")
    from gatedrag.corpus import server as corpus_server
    from gatedrag.corpus.build import build_index
    from gatedrag.retrieval.corpus import demo_corpus_path

    monkeypatch.setattr(corpus_server._Handler, "timeout", 0.5)
    build_index(demo_corpus_path(), tmp_path / "demo", tokenizer="gpt2")
    server = corpus_server.make_server(tmp_path / "demo", port=0)
    server.start_background()
    try:
        slow = socket.create_connection(server.server_address[:2], timeout=5)
        slow.sendall(b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")  # and then nothing
        start = time.monotonic()
        assert slow.recv(1024) == b""  # closed by the server after its timeout
        assert time.monotonic() - start < 3
        slow.close()
        import http.client

        conn = http.client.HTTPConnection(*server.server_address[:2], timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
    finally:
        server.shutdown()
        server.server_close()


def test_both_servers_refuse_text_that_is_not_unicode(tiny_lm, tmp_path):
    from fastapi.testclient import TestClient

    from gatedrag.serve.app import create_app

    body = b'{"model": "tiny", "prompt": "\\ud800", "max_tokens": 2}'
    with TestClient(create_app(tiny_lm, model_name="tiny"), raise_server_exceptions=False) as client:
        response = client.post("/v1/completions", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and "lone surrogate" in response.json()["error"]["message"]
    pytest.importorskip("infini_gram.engine")
    from gatedrag.corpus.api import QueryHandler
    from gatedrag.corpus.build import build_index
    from gatedrag.corpus.local import LocalIndex
    from gatedrag.retrieval.corpus import demo_corpus_path

    build_index(demo_corpus_path(), tmp_path / "demo", tokenizer="gpt2")
    handler = QueryHandler(LocalIndex(tmp_path / "demo"), name="demo")
    assert "lone surrogate" in handler.handle(json.loads('{"query_type": "ntd", "query": "\\ud800"}'))["error"]


def test_a_path_under_an_unknown_users_home_is_a_typed_error_not_a_runtime_error():
    """``gatedrag corpus count '~x...' ...`` crashed with ``RuntimeError: Could not determine home
    directory`` (the CLI fuzz, 1 of 10,000 inputs): ``Path.expanduser`` on ``~user`` it cannot find."""
    from typer.testing import CliRunner

    from gatedrag.cli.app import app

    result = CliRunner().invoke(app, ["corpus", "count", "~no-such-user-here/index", "Paris"])
    assert result.exit_code == 1, result.output  # a typed error: its message, no traceback
    assert "no home directory is known for that user" in result.output
