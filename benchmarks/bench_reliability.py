"""The reliability campaign (issue 21): fuzzing, injected backend faults, concurrency.

    python benchmarks/bench_reliability.py fuzz [--n 10000]        # every public entry
    python benchmarks/bench_reliability.py faults [--questions 12]   # every backend x fault kind
    python benchmarks/bench_reliability.py concurrency               # threads, chat sessions, servers

Each writes ``benchmarks/results/reliability/<name>.json`` and prints a table. The model is a
2-layer random Qwen2 with the default model's real tokenizer (``--model tiny``: what is measured is
the pipeline around the model, and every input reaches a real tokenizer) or a packaged model by
name (``--model gemma-3-270m``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import common  # noqa: F401  (offline environment)
import typer

RESULTS = Path(__file__).resolve().parent / "results" / "reliability"
app = typer.Typer(add_completion=False, no_args_is_help=True)


def load_model(name: str) -> Any:
    """``tiny``: a random 2-layer Qwen2 on the default model's tokenizer; else a packaged model."""
    import torch

    from gatedrag.config import DEFAULT_MODEL, ModelConfig
    from gatedrag.lm.hf import HFLanguageModel

    torch.set_num_threads(1)
    if name != "tiny":
        return HFLanguageModel.load(ModelConfig(name=name, top_k=5))
    from transformers import AutoTokenizer

    from gatedrag.evals.tiny import tiny_qwen2
    from gatedrag.lm.hf import convert_gguf, resolve_dtype
    from gatedrag.lm.packaged import PACKAGED_MODELS, ensure_converted

    cfg = ModelConfig(name=DEFAULT_MODEL)
    dtype = resolve_dtype(cfg)
    folder = ensure_converted(PACKAGED_MODELS[DEFAULT_MODEL], dtype, lambda gguf, out: convert_gguf(gguf, out, dtype))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tiny_qwen2(tokenizer, name="tiny-qwen2-real-tokenizer", max_positions=32768, tie_embeddings=True, top_k=5)


def hotpot_retriever() -> Any:
    """BM25 over the HotpotQA corpus (its index is cached after the first build)."""
    from common import DATA

    from gatedrag.config import RetrievalConfig
    from gatedrag.retrieval.factory import build_retriever

    return build_retriever(RetrievalConfig(corpus=DATA / "hotpotqa" / "corpus.jsonl"))


def hotpot_questions(n: int) -> list[str]:
    """HotpotQA dev questions 101 to 100 + n (spare ones: the first 100 are the evaluation's)."""
    from common import DATA

    from gatedrag.evals.datasets import load_dataset

    return [e.question for e in load_dataset("hotpotqa", DATA, limit=100 + n)[100:]]


def demo_retriever() -> Any:
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus

    return BM25Retriever.build(load_corpus(demo_corpus_path()))


def write(name: str, result: dict[str, Any]) -> None:
    from common import machine

    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **result}, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {path}")


@contextlib.contextmanager
def corpus_server() -> Iterator[tuple[str, int]]:
    """``gatedrag corpus serve`` on the demo corpus's Infini-gram index, on a free port."""
    from gatedrag.corpus.build import build_index
    from gatedrag.corpus.server import make_server
    from gatedrag.retrieval.corpus import demo_corpus_path

    with tempfile.TemporaryDirectory() as tmp:
        build_index(demo_corpus_path(), Path(tmp) / "demo", tokenizer="gpt2")
        server = make_server(Path(tmp) / "demo", port=0)
        server.start_background()
        try:
            yield server.server_address[:2]
        finally:
            server.shutdown()
            server.server_close()


# -- fuzz ---------------------------------------------------------------------------------------
ENTRIES = ["config", "corpus", "claims", "dataset", "api", "openai-server", "corpus-server", "cli"]


@app.command()
def fuzz(
    n: Annotated[int, typer.Option(help="Inputs tried per entry.")] = 10_000,
    seed: Annotated[int, typer.Option()] = 0,
    entries: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(ENTRIES))] = ",".join(ENTRIES),
    model: Annotated[str, typer.Option(help="tiny, or a packaged model name")] = "tiny",
) -> None:
    """Feed every public entry N generated inputs; count answers, typed refusals and crashes."""
    from fastapi.testclient import TestClient
    from rich.console import Console
    from rich.table import Table

    import gatedrag.factory
    from gatedrag.config import PipelineConfig
    from gatedrag.evals import fuzz_entries as E
    from gatedrag.evals.fuzz import fuzz as run_fuzz
    from gatedrag.pipeline import GatedRAG
    from gatedrag.serve.app import ServeLimits, create_app

    commit = _commit()  # the code this run imports (HEAD may move while it runs)
    chosen = entries.split(",")
    unknown = set(chosen) - set(ENTRIES)
    if unknown:
        raise typer.BadParameter(f"unknown entries {sorted(unknown)}")
    lm = load_model(model) if {"api", "openai-server", "cli"} & set(chosen) else None
    reports = []
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        for name in chosen:
            print(f"fuzzing {name} ({n} inputs)", flush=True)
            if name in ("config", "corpus", "claims", "dataset"):
                build = {"config": E.config_file_entry, "corpus": E.corpus_file_entry}.get(name) or {
                    "claims": E.claims_file_entry,
                    "dataset": E.dataset_file_entry,
                }[name]
                reports.append(run_fuzz(build(tmp), n=n, seed=seed))
            elif name == "api":
                cfg = PipelineConfig.model_validate({"decoding": {"max_answer_tokens": 16, "batch_size": 4}})
                reports.append(run_fuzz(E.api_entry(GatedRAG(lm, demo_retriever(), cfg)), n=n, seed=seed))
            elif name == "openai-server":
                limits = ServeLimits(max_tokens=16, max_request_bytes=20_000)
                with TestClient(create_app(lm, model_name="m", limits=limits), raise_server_exceptions=False) as c:
                    reports.append(run_fuzz(E.serve_entry(c, "m"), n=n, seed=seed))
            elif name == "corpus-server":
                with corpus_server() as address:
                    reports.append(run_fuzz(E.corpus_server_entry(address), n=n, seed=seed))
            else:
                original = gatedrag.factory.build_model
                gatedrag.factory.build_model = lambda *a, **k: lm  # no real model loads in the CLI's commands
                try:
                    reports.append(run_fuzz(E.cli_entry(tmp), n=n, seed=seed))
                finally:
                    gatedrag.factory.build_model = original
            print(reports[-1].model_dump_json(), flush=True)
    table = Table("entry", "tried", "answered", "refused (typed)", "crashes", "s")
    for r in reports:
        refused = ", ".join(f"{k} {v}" for k, v in r.refused.items())
        table.add_row(r.entry, str(r.tried), str(r.ok), refused, str(r.crashes), f"{r.seconds:.0f}")
    Console(width=160).print(table)
    previous = RESULTS / "fuzz.json"  # entries rerun replace theirs; the others are kept, each with its commit
    old = json.loads(previous.read_text()) if previous.is_file() else {"entries": []}
    inherited = {k: old[k] for k in ("n", "seed", "model", "commit") if k in old}  # a file from before per-entry fields
    kept = [{**inherited, **e} for e in old["entries"]]
    ran = [{**r.model_dump(), "n": n, "seed": seed, "model": model, "commit": commit} for r in reports]
    names = {r["entry"] for r in ran}
    write("fuzz", {"entries": [e for e in kept if e["entry"] not in names] + ran})


def _commit() -> str:
    import subprocess

    found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return found.stdout.strip()


# -- faults -----------------------------------------------------------------------------------
FAULT_BACKENDS = ["retriever", "corpus statistics", "re-ranker", "model", "chat scheduler", "model over HTTP"]
QUESTIONS = [
    "Who directed Ed Wood?",
    "Where was Scott Derrickson born?",
    "What is the capital of France?",
    "Which film did Tim Burton direct in 1994?",
    "Who wrote Hamlet?",
    "When was the Eiffel Tower built?",
]


class _Paging:
    """A retriever whose n-th call returns the n-th page of BM25's ranking (the random model's
    masked queries all come down to the question, so a deep search would otherwise find nothing
    new to re-rank)."""

    def __init__(self, inner: Any):
        self.inner, self.name = inner, f"paging({inner.name})"
        self._calls = 0

    def retrieve(self, queries: list[str], k: int) -> list[list[Any]]:
        page, self._calls = self._calls, self._calls + 1
        return [hits[page * k : (page + 1) * k] for hits in self.inner.retrieve(queries, k * (page + 1))]


def _run_case(ask: Callable[[str], Any], questions: list[str], deadline_s: float) -> dict[str, Any]:
    """Answer ``questions`` one by one with ``ask``; count outcomes and time each."""
    out: Counter[str] = Counter()
    walls, causes = [], Counter()
    for q in questions:
        start = time.monotonic()
        try:
            answer = ask(q)
            out["completed"] += 1
            if answer.degraded:
                out["degraded"] += 1
                for s in answer.steps:
                    if s.error:
                        causes[s.error.split(":")[0][:60]] += 1
        except Exception as err:
            out[f"raised {type(err).__name__}"] += 1
        wall = time.monotonic() - start
        walls.append(wall)
        if wall > deadline_s + 2.0:
            out["over deadline"] += 1
    return {"outcomes": dict(out), "max_wall_s": round(max(walls), 2), "causes": dict(causes.most_common(3))}


@app.command()
def faults(
    questions: Annotated[int, typer.Option(help="Questions per backend and fault kind.")] = 12,
    deadline: Annotated[float, typer.Option(help="Each answer's deadline (s).")] = 8.0,
    timeout: Annotated[float, typer.Option(help="backends.timeout_s")] = 1.0,
    model: Annotated[str, typer.Option(help="tiny, or a packaged model name")] = "tiny",
    backends: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(FAULT_BACKENDS))] = ",".join(
        FAULT_BACKENDS
    ),
) -> None:
    """Every backend x fault kind, on HotpotQA questions and corpus: with every second call
    failing (a retry can help) and with every call failing (the backend is down); every answer
    must finish by its deadline."""
    from rich.console import Console
    from rich.table import Table

    from gatedrag.config import PipelineConfig
    from gatedrag.corpus.client import InfiniGramClient
    from gatedrag.corpus.guard import GuardedCorpusStats
    from gatedrag.evals.faults import FAULT_KINDS, Faults, FaultyCorpusStats, FaultyLM, FaultyReranker, FaultyRetriever
    from gatedrag.gate import Gate
    from gatedrag.pipeline import GatedRAG
    from gatedrag.retrieval.embed import MiniLMEmbedder
    from gatedrag.retrieval.rerank import EmbeddingReranker

    class Extractor:  # claims from capitalised words: the spaCy extractor's job, without its load time
        def entities(self, texts: list[str]) -> list[list[str]]:
            return [[w.strip("?.,") for w in t.split() if w[:1].isupper()][:2] for t in texts]

        def triples(self, texts: list[str]) -> list[list[Any]]:
            from gatedrag.types import Triple

            out = []
            for t in texts:
                ents = self.entities([t])[0]
                out.append([Triple(head=ents[0], relation="is", tail=ents[1])] if len(ents) >= 2 else [])
            return out

    lm = load_model(model)
    retriever = hotpot_retriever()
    asked = hotpot_questions(questions)
    base = {
        "decoding": {"max_answer_tokens": 32, "batch_size": 4},
        "gate": {"rules": [{"signal": "token_rag", "threshold": 0.1}]},
        "backends": {"timeout_s": timeout, "retries": 1, "backoff_s": 0.05},
        "policy": {"max_retrievals": 3},
    }
    rows = []
    with corpus_server() as address:
        stats_inner = InfiniGramClient(f"http://{address[0]}:{address[1]}/", index="demo", timeout=timeout, retries=1)
        reranker_inner = EmbeddingReranker(MiniLMEmbedder())
        chosen = backends.split(",")
        for backend in [b for b in ["retriever", "corpus statistics", "re-ranker", "model"] if b in chosen]:
            for kind, every in [(k, e) for k in FAULT_KINDS for e in (2, 1)]:
                if backend == "model" and kind == "hang":
                    continue  # an in-process model cannot be interrupted: see the HTTP backend's timeout tests
                if kind == "slow" and every == 1:
                    continue  # slow within the limit is not a failure: once is enough
                plan = Faults(kind=kind, every=every, slow_s=timeout / 4)
                cfg_data = json.loads(json.dumps(base))
                parts: dict[str, Any] = {"lm": lm, "retriever": retriever}
                if backend == "retriever":
                    parts["retriever"] = FaultyRetriever(retriever, plan)
                elif backend == "model":
                    parts["lm"] = FaultyLM(lm, plan)
                    cfg_data["policy"]["select"] = {"verify": True}
                elif backend == "re-ranker":
                    cfg_data["policy"]["deep_search"] = {"rounds": 2, "rerank": "dense"}
                    cfg_data["policy"]["max_retrievals"] = 6
                    parts["reranker"] = FaultyReranker(reranker_inner, plan)
                    parts["retriever"] = _Paging(retriever)  # each search round finds new passages to re-rank
                cfg = PipelineConfig.model_validate(cfg_data)
                gate = None
                if backend == "corpus statistics":
                    cfg = PipelineConfig.model_validate(
                        {**cfg_data, "gate": {"rules": [{"signal": "entity_freq"}, {"signal": "cooc"}]}}
                    )
                    stats = GuardedCorpusStats(FaultyCorpusStats(stats_inner, plan), cfg.backends)
                    gate = Gate(cfg.gate, corpus=stats, extractor=Extractor())
                rag = GatedRAG(parts["lm"], parts["retriever"], cfg, gate=gate, reranker=parts.get("reranker"))
                start = time.monotonic()
                case = _run_case(functools.partial(rag.ask, deadline_s=deadline), asked, deadline)
                plan.release()
                rows.append(
                    {
                        "backend": backend,
                        "fault": kind,
                        "failing": "every call" if every == 1 else f"every {every}nd call",
                        "calls": plan.calls,
                        "injected": plan.injected,
                        **case,
                        "seconds": round(time.monotonic() - start, 1),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
        if "chat scheduler" in chosen:
            rows += _chat_faults(lm, retriever, asked, base, deadline, timeout)
        if "model over HTTP" in chosen:
            rows += _http_model_faults(lm, retriever, asked, base, deadline, timeout)
    table = Table("backend", "fault", "failing", "calls", "injected", "outcomes", "max wall s")
    for r in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
        table.add_row(
            r["backend"], r["fault"], r["failing"], str(r["calls"]), str(r["injected"]), outcomes, str(r["max_wall_s"])
        )
    Console(width=160).print(table)
    previous = RESULTS / "faults.json"  # backends rerun replace their cases; the others are kept
    kept = json.loads(previous.read_text())["cases"] if previous.is_file() else []
    commit = _commit()
    rows = [{**r, "commit": commit} for r in rows]
    cases = [c for c in kept if c["backend"].split(" (")[0] not in chosen] + rows
    write("faults", {"questions": questions, "deadline_s": deadline, "timeout_s": timeout, "model": model,
                     "cases": cases})  # fmt: skip


def _faulty_asgi(app: Any, plan: Any) -> Any:
    """``app`` with ``plan``'s faults on its completion requests: a 500, a response that never comes,
    a 200 whose body is not a completion, a body cut in the middle."""
    import asyncio

    async def wrapped(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("completions") or not plan.due():
            await app(scope, receive, send)
            return
        if plan.kind == "hang":
            while not plan._released.is_set():
                await asyncio.sleep(0.05)
        if plan.kind == "slow":
            await asyncio.sleep(plan.slow_s)
            await app(scope, receive, send)
            return
        status, body = {
            "raise": (500, b'{"error": {"message": "injected", "type": "server_error"}}'),
            "malformed": (200, b'{"choices": "not a list"}'),
            "partial": (200, b'{"id": "x", "choices": [{"text": "Par'),
        }.get(plan.kind, (500, b"{}"))
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})

    return wrapped


def _http_model_faults(
    lm: Any, retriever: Any, asked: list[str], base: dict[str, Any], deadline: float, timeout: float
) -> list[dict[str, Any]]:
    """The model behind ``gatedrag serve``'s API (the openai backend, ``model.openai.timeout_s`` =
    ``timeout``, one retry) with faults injected into the server's completion responses."""
    from gatedrag.config import PipelineConfig
    from gatedrag.evals.faults import FAULT_KINDS, Faults
    from gatedrag.lm.openai_compat import load_openai_model
    from gatedrag.pipeline import GatedRAG
    from gatedrag.serve.app import ServeLimits, create_app
    from gatedrag.serve.background import serving

    rows = []
    served = create_app(lm, model_name="m", limits=ServeLimits(max_tokens=64))
    for kind in FAULT_KINDS:
        plan = Faults(kind=kind, every=2, slow_s=timeout / 4)
        with serving(_faulty_asgi(served, plan), log_level="error") as url:
            model = {"name": "m", "backend": "openai", "top_k": 5,
                     "openai": {"base_url": url, "api_key": "sk-none", "timeout_s": timeout, "max_retries": 1}}  # fmt: skip
            cfg = PipelineConfig.model_validate({**base, "model": model})
            rag = GatedRAG(load_openai_model(cfg.model), retriever, cfg)
            start = time.monotonic()
            case = _run_case(functools.partial(rag.ask, deadline_s=deadline), asked, deadline)
            plan.release()
        rows.append(
            {
                "backend": "model over HTTP",
                "fault": kind,
                "failing": "every 2nd call",
                "calls": plan.calls,
                "injected": plan.injected,
                **case,
                "seconds": round(time.monotonic() - start, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def _chat_faults(
    lm: Any, retriever: Any, asked: list[str], base: dict[str, Any], deadline: float, timeout: float
) -> list[dict[str, Any]]:
    """Chat sessions sharing one scheduler, 4 at a time, while the retriever hangs on every call
    or the model's rounds raise on every second one: every turn must end (an answer, degraded, or
    a typed error for that turn alone) by its deadline."""
    from gatedrag.chat import ChatSession
    from gatedrag.config import PipelineConfig
    from gatedrag.evals.faults import Faults, FaultyLM, FaultyRetriever
    from gatedrag.pipeline import GatedRAG
    from gatedrag.scheduler import Scheduler

    rows = []
    for what, plan in [("retriever", Faults(kind="hang")), ("model", Faults(kind="raise", every=2))]:
        cfg = PipelineConfig.model_validate({**base, "decoding": {"max_answer_tokens": 32, "batch_size": 8}})
        faulty_lm = FaultyLM(lm, plan) if what == "model" else lm
        faulty_retriever = FaultyRetriever(retriever, plan) if what == "retriever" else retriever
        rag = GatedRAG(faulty_lm, faulty_retriever, cfg)
        out: Counter[str] = Counter()
        walls: list[float] = []
        start = time.monotonic()
        with Scheduler(rag, max_pending=64) as scheduler:

            def talk(pair: tuple[str, str], scheduler: Scheduler = scheduler) -> list[tuple[str, float]]:
                session = ChatSession(scheduler, deadline_s=deadline)
                ended = []
                for message in pair:
                    t = time.monotonic()
                    try:
                        turn = session.send(message)
                        ended.append(("degraded" if turn.answer.degraded else "completed", time.monotonic() - t))
                    except Exception as err:
                        ended.append((f"raised {type(err).__name__}", time.monotonic() - t))
                session.close()
                return ended

            pairs = [(q, "And why is that?") for q in asked]
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                for ended in pool.map(talk, pairs):
                    for outcome, wall in ended:
                        out[outcome] += 1
                        walls.append(wall)
                        if wall > deadline + 2.0:
                            out["over deadline"] += 1
        plan.release()
        rows.append(
            {
                "backend": f"chat scheduler ({what})",
                "fault": plan.kind,
                "failing": "every call" if plan.every == 1 else f"every {plan.every}nd call",
                "calls": plan.calls,
                "injected": plan.injected,
                "outcomes": dict(out),
                "max_wall_s": round(max(walls), 2),
                "causes": {},
                "seconds": round(time.monotonic() - start, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


# -- concurrency --------------------------------------------------------------------------------
def _signature(answer: Any) -> tuple[Any, ...]:
    return (answer.text, answer.counts.retrievals, tuple(s.query for s in answer.steps if s.kind == "retrieval"))


@app.command()
def concurrency(
    threads: Annotated[int, typer.Option()] = 8,
    per_thread: Annotated[int, typer.Option(help="Questions each thread asks.")] = 50,
    clients: Annotated[int, typer.Option(help="Concurrent clients on each server.")] = 32,
    model: Annotated[str, typer.Option(help="tiny, or a packaged model name")] = "tiny",
) -> None:
    """The same answers from THREADS threads through one pipeline (and chat sessions, and server
    clients) as from serial use."""
    import http.client

    from fastapi.testclient import TestClient

    from gatedrag.chat import ChatSession
    from gatedrag.config import PipelineConfig
    from gatedrag.pipeline import GatedRAG
    from gatedrag.scheduler import Scheduler
    from gatedrag.serve.app import ServeLimits, create_app

    lm = load_model(model)
    cfg = PipelineConfig.model_validate(
        {"decoding": {"max_answer_tokens": 24, "batch_size": 1}, "gate": {"rules": [{"signal": "token_rag"}]}}
    )
    rag = GatedRAG(lm, demo_retriever(), cfg)
    asked = [f"{QUESTIONS[i % len(QUESTIONS)]} ({i})" for i in range(threads * per_thread)]
    result: dict[str, Any] = {"model": model, "threads": threads, "per_thread": per_thread}

    start = time.monotonic()
    serial = {q: _signature(rag.ask(q)) for q in asked}
    result["serial_s"] = round(time.monotonic() - start, 1)

    def worker(i: int) -> dict[str, tuple[Any, ...]]:
        return {q: _signature(rag.ask(q)) for q in asked[i * per_thread : (i + 1) * per_thread]}

    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        together = {k: v for part in pool.map(worker, range(threads)) for k, v in part.items()}
    result["threads_s"] = round(time.monotonic() - start, 1)
    result["threads_same"] = sum(serial[q] == together[q] for q in asked)
    result["threads_total"] = len(asked)
    print(json.dumps(result), flush=True)

    # chat sessions sharing one scheduler: each session's two turns answer as a session alone does
    chat_cfg = cfg.model_copy(update={"decoding": cfg.decoding.model_copy(update={"batch_size": 8})})
    chat_rag = GatedRAG(lm, demo_retriever(), chat_cfg)
    turns = [("Who directed Ed Wood?", "Where was he born?"), ("What is the capital of France?", "How big is it?")]

    def conversation(answerer: Any, pair: tuple[str, str]) -> tuple[str, str]:
        session = ChatSession(answerer)
        try:
            return session.send(pair[0]).answer.text, session.send(pair[1]).answer.text
        finally:
            session.close()

    alone = [conversation(chat_rag, pair) for pair in turns * 4]
    with Scheduler(chat_rag, max_pending=64) as scheduler:

        def talk(pair: tuple[str, str]) -> tuple[str, str]:
            return conversation(scheduler, pair)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            shared = list(pool.map(talk, turns * 4))
    result["chat_sessions"] = len(shared)
    result["chat_same"] = sum(a == b for a, b in zip(alone, shared))
    print(json.dumps(result), flush=True)

    # the OpenAI-compatible server: CLIENTS concurrent requests, each as answered alone
    app_ = create_app(lm, model_name="m", limits=ServeLimits(max_tokens=16, max_batch=8))
    prompts = [f"Q: {QUESTIONS[i % len(QUESTIONS)]} ({i})\nA:" for i in range(clients)]
    with TestClient(app_) as client:

        def complete(p: str) -> str:
            r = client.post("/v1/completions", json={"model": "m", "prompt": p, "max_tokens": 12, "temperature": 0})
            return r.json()["choices"][0]["text"]

        solo = [complete(p) for p in prompts]
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            crowd = list(pool.map(complete, prompts))
    result["openai_server_clients"] = clients
    result["openai_server_same"] = sum(a == b for a, b in zip(solo, crowd))

    # the corpus server: CLIENTS concurrent count queries, each as answered alone
    with corpus_server() as address:

        def count(term: str) -> Any:
            conn = http.client.HTTPConnection(*address, timeout=30)
            body = json.dumps({"query_type": "count", "query": term, "index": "demo"})
            conn.request("POST", "/", body=body, headers={"Content-Type": "application/json"})
            found = json.loads(conn.getresponse().read())
            conn.close()
            return found.get("count")

        terms = [w for q in QUESTIONS for w in q.rstrip("?").split()][:clients]
        solo_counts = [count(t) for t in terms]
        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            crowd_counts = list(pool.map(count, terms))
    result["corpus_server_clients"] = len(terms)
    result["corpus_server_same"] = sum(a == b for a, b in zip(solo_counts, crowd_counts))
    print(json.dumps(result, indent=1))
    write("concurrency", result)


# -- crash safety -------------------------------------------------------------------------------
CRASH_TARGETS = ["bm25", "faiss", "infini-gram", "eval-records", "model-cache"]


def _passages(n: int) -> list[Any]:
    from common import DATA

    from gatedrag.retrieval.corpus import load_corpus

    return load_corpus(DATA / "hotpotqa" / "corpus.jsonl")[:n]


@app.command("crash-target", hidden=True)
def crash_target(name: str, work: Path) -> None:
    """One uninterrupted run of a crash target in WORK (what ``crash`` starts and kills); prints
    ``start`` once its imports are done and the work begins."""
    print("start", flush=True)
    if name == "bm25":
        from gatedrag.retrieval.bm25 import BM25Retriever

        BM25Retriever.build(_passages(100_000)).save(work / "index")
    elif name == "faiss":
        from gatedrag.retrieval.dense import DenseRetriever
        from gatedrag.retrieval.embed import MiniLMEmbedder

        DenseRetriever.build(_passages(600), MiniLMEmbedder()).save(work / "index")
    elif name == "infini-gram":
        from common import DATA

        from gatedrag.corpus.build import build_index

        build_index(DATA / "hotpotqa" / "corpus.jsonl", work / "index", tokenizer="gpt2")
    elif name == "eval-records":
        from gatedrag.config import PipelineConfig
        from gatedrag.evals.datasets import Example
        from gatedrag.evals.runner import run_method
        from gatedrag.types import Answer

        class Slow:  # a pipeline that takes a while per batch: the runner and its records are what is tested
            config = PipelineConfig.model_validate({"decoding": {"batch_size": 2}})

            def batch(self, questions: list[str], passages: Any = None) -> list[Answer]:
                time.sleep(0.3)
                return [Answer(question=q, text=f"So the answer is {q[-1]}.", answer=q[-1], confidence=0.5)
                        for q in questions]  # fmt: skip

        examples = [
            Example(id=f"q{i}", dataset="fake", question=f"question {i}", answers=[str(i)[-1]]) for i in range(40)
        ]
        run_method(Slow(), examples, work / "records.jsonl", method="fake")
    elif name == "model-cache":
        from gatedrag.config import ModelConfig
        from gatedrag.lm.hf import HFLanguageModel

        HFLanguageModel.load(ModelConfig(name="gemma-3-270m", cache_dir=work / "cache"))
    else:
        raise typer.BadParameter(f"unknown target {name}")


def _state(name: str, work: Path) -> str:
    """What a reader finds in WORK after a run of ``name`` ended (or was killed): ``complete``,
    ``absent`` (nothing usable yet: rebuilt on next use, nothing partial read) or ``BROKEN: ...``."""
    try:
        if name == "bm25":
            from gatedrag.retrieval.bm25 import BM25Retriever

            r = BM25Retriever.load(work / "index")
            return "complete" if r.retrieve(["Ed Wood director"], k=3)[0] else "BROKEN: no hits"
        if name == "faiss":
            from gatedrag.retrieval.dense import DenseRetriever
            from gatedrag.retrieval.embed import MiniLMEmbedder

            r = DenseRetriever.load(work / "index", MiniLMEmbedder())
            return "complete" if len(r.passages) == 600 else f"BROKEN: {len(r.passages)} passages"
        if name == "infini-gram":
            from gatedrag.corpus.local import LocalIndex

            count = LocalIndex(work / "index").count("Ed Wood").count
            return "complete" if count > 0 else "BROKEN: no count"
        if name == "eval-records":
            from gatedrag.evals.runner import read_records

            ids = [r.id for r in read_records(work / "records.jsonl")]
            if len(ids) != len(set(ids)):
                return f"BROKEN: {len(ids) - len(set(ids))} duplicated records"
            return "complete" if len(ids) == 40 else f"partial ({len(ids)} of 40 records, resumable)"
        if name == "model-cache":
            from gatedrag.config import ModelConfig
            from gatedrag.lm.hf import resolve_dtype
            from gatedrag.lm.packaged import PACKAGED_MODELS, _manifest_ok, converted_dir

            spec = PACKAGED_MODELS["gemma-3-270m"]
            dtype = resolve_dtype(ModelConfig(name="gemma-3-270m"))
            folder = converted_dir(spec, dtype, work / "cache")
            if not folder.exists():
                return "absent"
            return "complete" if _manifest_ok(folder, spec.sha256, dtype) else "BROKEN: a partial conversion in place"
    except Exception as err:
        text = f"{type(err).__name__}: {err}"
        return (
            "absent" if "no gatedrag index" in text or "not found" in text or "missing" in text else f"BROKEN: {text}"
        )
    raise typer.BadParameter(f"unknown target {name}")


@app.command()
def crash(
    kills: Annotated[int, typer.Option(help="Kill points tried per target.")] = 8,
    targets: Annotated[str, typer.Option(help="Comma-separated: " + ", ".join(CRASH_TARGETS))] = ",".join(
        CRASH_TARGETS
    ),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """``kill -9`` each target at KILLS random points of its run; after each, what a reader finds
    must be the previous complete state (or nothing yet), never a partial one; a final run must
    complete."""
    import random
    import signal
    import subprocess
    import sys

    from rich.console import Console
    from rich.table import Table

    rng = random.Random(seed)
    rows = []
    for name in targets.split(","):
        with tempfile.TemporaryDirectory() as scratch:
            work = Path(scratch)
            cmd = [sys.executable, "-W", "ignore", __file__, "crash-target", name, str(work)]

            def started(cmd: list[str] = cmd) -> subprocess.Popen[str]:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                assert proc.stdout is not None
                proc.stdout.readline()  # "start": the imports are done, the work begins
                return proc

            proc = started()
            start = time.monotonic()
            _, err = proc.communicate()
            full = time.monotonic() - start  # the work alone, without the interpreter's start
            first = subprocess.CompletedProcess(cmd, proc.returncode, "", err)
            states: Counter[str] = Counter()
            broken: list[str] = []
            if first.returncode:
                broken.append(f"the uninterrupted run failed: {first.stderr[-300:]}")
            before = _state(name, work)
            if name in ("eval-records", "model-cache"):  # these resume or rebuild: start from nothing
                subprocess.run(["rm", "-rf", str(work / "records.jsonl"), str(work / "cache")], check=False)
            for _ in range(kills):
                proc = started()
                time.sleep(rng.uniform(0.0, 1.0) * full)
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                state = _state(name, work)
                states[state.split(" (")[0]] += 1
                if state.startswith("BROKEN"):
                    broken.append(state)
            last = subprocess.run(cmd, capture_output=True, text=True)
            after = _state(name, work)
            if last.returncode or after != "complete":
                broken.append(f"the run after the kills: rc {last.returncode}, {after}: {last.stderr[-300:]}")
            rows.append({"target": name, "full_run_s": round(full, 1), "before": before, "kills": kills,
                         "after_kill": dict(states), "final": after, "broken": broken})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    table = Table("target", "full run s", "kills", "states after a kill", "final", "broken")
    for r in rows:
        states_text = ", ".join(f"{k} {v}" for k, v in r["after_kill"].items())
        table.add_row(
            r["target"], str(r["full_run_s"]), str(r["kills"]), states_text, r["final"], str(len(r["broken"]))
        )
    Console(width=160).print(table)
    write("crash", {"kills": kills, "seed": seed, "targets": rows})


if __name__ == "__main__":
    app()
