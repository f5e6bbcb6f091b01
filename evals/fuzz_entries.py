"""The public entries :mod:`evals.fuzz` feeds: config files, corpus, claims and dataset files, the
Python API (``ask`` / ``batch`` / ``stream``), the OpenAI-compatible server, the corpus-statistics
server and the CLI.

Each builder takes what the entry runs on (a scratch folder, a pipeline, a server) and returns an
:class:`~evals.fuzz.Entry`. File entries write each input over one scratch file.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from gatedrag.evals.fuzz import fuzz
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     report = fuzz(claims_file_entry(Path(tmp)), n=30, seed=1)
    >>> report.tried, report.crashes
    (30, 0)
"""

from __future__ import annotations

import contextlib
import http.client
import json
import shlex
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from gatedrag.config import PipelineConfig, load_config
from gatedrag.evals.fuzz import (
    Crashed,
    Entry,
    Refused,
    claims_json,
    config_documents,
    jsonl_files,
    junk,
    mutated,
    odd_text,
    passages_json,
)


def config_file_entry(tmp: Path) -> Entry:
    """``load_config`` on YAML / TOML files: the default config mutated, random structure, bytes."""
    base = PipelineConfig().model_dump(mode="json", exclude_none=True)

    def run(doc: tuple[str, bytes]) -> None:
        suffix, data = doc
        path = tmp / f"fuzz-config{suffix}"
        path.write_bytes(data)
        load_config(path)

    return Entry(name="config file", inputs=config_documents(base), run=run)


def corpus_file_entry(tmp: Path) -> Entry:
    """A corpus JSONL file read, indexed by BM25 and searched."""
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.retrieval.corpus import load_corpus

    def run(data: bytes) -> None:
        path = tmp / "fuzz-corpus.jsonl"
        path.write_bytes(data)
        passages = load_corpus(path)
        retriever = BM25Retriever.build(passages[:50])
        retriever.retrieve([passages[0].text or "x", "who?"], k=3)

    return Entry(name="corpus file", inputs=jsonl_files(passages_json()), run=run)


def claims_file_entry(tmp: Path) -> Entry:
    """A claims JSONL file (``gatedrag check --claims``) read."""
    from gatedrag.factcheck.claims import read_claims

    def run(data: bytes) -> None:
        path = tmp / "fuzz-claims.jsonl"
        path.write_bytes(data)
        read_claims(path)

    return Entry(name="claims file", inputs=jsonl_files(claims_json()), run=run)


def dataset_file_entry(tmp: Path) -> Entry:
    """Every dataset loader on a random JSON document (a mutated valid record or junk)."""
    from gatedrag.evals.datasets import DATASETS

    record = {
        "_id": "q1",
        "id": "q1",
        "question": "Who?",
        "answer": "x",
        "answers": ["x"],
        "answer_aliases": [],
        "possible_answers": '["x"]',
        "supporting_facts": [["t", 0]],
        "context": [["t", ["s."]]],
        "paragraphs": [{"idx": 0, "title": "t", "paragraph_text": "s.", "is_supporting": True}],
        "QUESTION": "Why?",
        "CONTEXTS": ["c"],
        "final_decision": "yes",
    }
    names = sorted(DATASETS)

    @st.composite
    def documents(draw: st.DrawFn) -> tuple[str, bytes]:
        name = draw(st.sampled_from(names))
        spec = DATASETS[name]
        if spec.questions.endswith(".jsonl"):
            return name, draw(jsonl_files(st.just(record)))
        shape = draw(st.sampled_from(["list", "mapping", "junk"]))
        if shape == "junk":
            value: Any = draw(junk())
        elif shape == "mapping":
            value = {"q1": draw(mutated(record))}
        else:
            value = [draw(mutated(record)) for _ in range(draw(st.integers(min_value=0, max_value=3)))]
        try:
            return name, json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except ValueError:
            return name, repr(value).encode()

    def run(doc: tuple[str, bytes]) -> None:
        name, data = doc
        spec = DATASETS[name]
        path = tmp / Path(spec.questions).name
        path.write_bytes(data)
        spec.loader(path)

    return Entry(name="dataset file", inputs=documents(), run=run)


def api_entry(rag: Any) -> Entry:
    """``GatedRAG.ask`` / ``batch`` / ``stream`` with any question, passages and deadline."""
    questions = st.one_of(odd_text(), junk(4))
    passage = st.one_of(st.fixed_dictionaries({"id": odd_text(), "title": odd_text(), "text": odd_text()}), junk(4))
    passages = st.one_of(st.none(), st.lists(passage, max_size=3), junk(4))
    deadlines = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.01, 1.0]))
    inputs = st.tuples(st.sampled_from(["ask", "batch", "stream"]), questions, passages, deadlines)

    def run(value: tuple[str, Any, Any, Any]) -> None:
        mode, question, given, deadline = value
        if mode == "ask":
            rag.ask(question, passages=given, deadline_s=deadline)
        elif mode == "batch":
            many = question if isinstance(question, list) else [question, "Where is Paris?"]
            rag.batch(many, passages=given, deadline_s=deadline)
        else:
            list(rag.stream(question, passages=given, deadline_s=deadline))

    return Entry(name="python api", inputs=inputs, run=run)


def _chat_request(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "logprobs": True}


def _completion_request(model: str) -> dict[str, Any]:
    return {"model": model, "prompt": "Q: x\nA:", "max_tokens": 4, "logprobs": 2, "stop": ["\n"]}


def _http_body(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "mutated", "mutated", "junk", "bytes", "huge"]))
    if kind == "valid":
        return json.dumps(valid).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "huge":
        return json.dumps({**valid, "prompt": "x " * 40_000}).encode()
    value = draw(mutated(valid)) if kind == "mutated" else draw(junk())
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
    except ValueError:
        return repr(value).encode()


def _headers(draw: st.DrawFn, body: bytes) -> dict[str, str]:
    headers = {"Content-Type": draw(st.sampled_from(["application/json", "text/plain", "application/x-www-form"]))}
    length = draw(st.sampled_from(["right", "right", "right", "abc", "-1", "huge", "none"]))
    if length == "right":
        headers["Content-Length"] = str(len(body))
    elif length == "huge":
        headers["Content-Length"] = str(10**12)
    elif length != "none":
        headers["Content-Length"] = length
    return headers


def serve_entry(client: Any, model: str) -> Entry:
    """``gatedrag serve``'s OpenAI-compatible API through an HTTP client (``fastapi.testclient``
    or ``httpx``) serving ``model``: random bodies, wrong types, huge bodies and wrong headers to its endpoints;
    after each, ``GET /v1/models`` must still answer."""

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[str, bytes, dict[str, str]]:
        path = draw(st.sampled_from([*["/v1/chat/completions", "/v1/completions"] * 3, "/v1/models", "/v1/nothing"]))
        body = _http_body(draw, _chat_request(model) if "chat" in path else _completion_request(model))
        return path, body, _headers(draw, body)

    def run(value: tuple[str, bytes, dict[str, str]]) -> None:
        path, body, headers = value
        try:
            response = client.post(path, content=body, headers=headers)
        except Exception as err:  # the client could not even send it (an impossible header): not the server's
            raise Refused(f"client: {type(err).__name__}") from None
        _judge(response.status_code, response.content, "error")
        alive = client.get("/v1/models")
        if alive.status_code != 200:
            raise Crashed(f"GET /v1/models answered {alive.status_code} after that request")

    return Entry(name="openai server", inputs=requests(), run=run)


def corpus_server_entry(address: tuple[str, int]) -> Entry:
    """``gatedrag corpus serve`` over a real socket: random bodies, API requests with wrong
    values, wrong lengths and half-sent requests; after each, ``GET /`` must still answer."""
    valid = {"query_type": "count", "query": "Ed Wood", "index": "demo"}

    @st.composite
    def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str], bool]:
        base = draw(
            st.sampled_from(
                [
                    valid,
                    {"query_type": "find_cnf", "query": "Ed Wood AND Tim Burton", "maxnum": 1, "max_diff_tokens": 20},
                    {"query_type": "ntd", "query": "Ed"},
                ]
            )
        )
        body = _http_body(draw, base)
        return body, _headers(draw, body), draw(st.booleans()) and draw(st.booleans())

    def run(value: tuple[bytes, dict[str, str], bool]) -> None:
        body, headers, half = value
        conn = http.client.HTTPConnection(*address, timeout=10)
        try:
            if half:  # headers promising more body than is sent, then the client gives up
                conn.putrequest("POST", "/")
                conn.putheader("Content-Length", str(len(body) + 100))
                conn.endheaders()
                conn.send(body[: len(body) // 2])
                conn.close()
                raise Refused("half-sent")
            try:
                conn.request("POST", "/", body=body, headers=headers)
                response = conn.getresponse()
            except (ConnectionError, http.client.HTTPException, TimeoutError) as err:
                raise Refused(f"connection: {type(err).__name__}") from None
            _judge(response.status, response.read(), "error")
        finally:
            conn.close()
        probe = http.client.HTTPConnection(*address, timeout=10)
        try:
            probe.request("GET", "/")
            if probe.getresponse().status != 200:
                raise Crashed("GET / failed after that request")
        except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
            raise Crashed(f"the server stopped answering: {type(err).__name__}: {err}") from None
        finally:
            probe.close()

    return Entry(name="corpus server", inputs=requests(), run=run)


def _judge(status: int, content: bytes, error_key: str) -> None:
    """An HTTP response: 2xx is ok, 4xx / 503 / 504 with a JSON error object is a refusal, anything
    else (500, a body that is not JSON) is a crash."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        if 200 <= status < 300 and content.startswith(b"data:"):  # a stream of server-sent events
            return
        raise Crashed(f"status {status} with a body that is not JSON: {content[:200]!r}") from None
    if 200 <= status < 300:
        return
    if (400 <= status < 500 or status in (503, 504)) and isinstance(body, dict) and error_key in body:
        raise Refused(str(status))
    raise Crashed(f"status {status}: {content[:300]!r}")


CLI_WORDS = [
    "ask", "check", "eval", "report", "tune", "index", "corpus", "build", "count", "query",
    "--json", "--config", "--corpus", "--backend", "--claims", "--out", "--dataset", "--methods", "--limit",
    "--batch-size", "--help", "hf", "topk", "openai", "nope", "hotpotqa", "gated", "no-rag", "0", "-1", "3",
    "x.yaml", "missing.jsonl", "", "--", "-", "Who wrote Hamlet?",
]  # fmt: skip


def cli_entry(tmp: Path) -> Entry:
    """The ``gatedrag`` CLI (typer's runner, in ``tmp``) on argument lists drawn from its own
    words and random text: a non-zero exit with a message is a refusal, a traceback a crash.
    ``serve``, ``corpus serve`` and ``chat`` are left out: they wait for clients or a terminal."""
    from typer.testing import CliRunner

    from gatedrag.cli.app import app

    runner = CliRunner()
    shell_text = st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=30)
    commands = st.sampled_from([["ask"], ["check"], ["eval"], ["report"], ["tune"], ["index"], ["corpus"],
                                ["corpus", "count"], ["index", "build"], []])  # fmt: skip
    args = st.builds(
        lambda head, rest: [*head, *rest] or ["--help"],
        commands,
        st.lists(st.one_of(st.sampled_from(CLI_WORDS), shell_text), max_size=6),
    )

    def run(argv: list[str]) -> None:
        if argv[0] in ("serve", "chat") or argv[:2] == ["corpus", "serve"]:
            raise Refused("left out")
        if any("\x00" in a or any(0xD800 <= ord(c) <= 0xDFFF for c in a) for a in argv):
            raise Refused("unrepresentable argv")  # a shell cannot pass NUL or a lone surrogate either
        with contextlib.chdir(tmp):
            result = runner.invoke(app, argv, catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            tail = f"{type(result.exception).__name__}: {result.exception}"
            raise Crashed(f"gatedrag {shlex.join(argv)} raised {tail}")
        if "Traceback (most recent call last)" in result.output:
            raise Crashed(f"gatedrag {shlex.join(argv)} printed a traceback")
        if result.exit_code:
            raise Refused(f"exit {result.exit_code}")

    return Entry(name="cli", inputs=args, run=run)


__all__ = [
    "api_entry",
    "claims_file_entry",
    "cli_entry",
    "config_file_entry",
    "corpus_file_entry",
    "corpus_server_entry",
    "dataset_file_entry",
    "serve_entry",
]
