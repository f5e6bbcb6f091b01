"""`gatedrag serve` on loopback: the official openai client and LangChain's ChatOpenAI against it,
streaming, logprobs, batching of concurrent requests, OpenAI-style errors; and the openai backend
answering through it exactly as the model does in-process."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import openai
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from gatedrag.config import GateConfig, ModelConfig, OpenAIConfig, PipelineConfig, TokenRAGRule
from gatedrag.lm.openai_compat import OpenAICompleter, load_openai_model
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.serve.app import ServeLimits, create_app
from gatedrag.serve.background import serving
from gatedrag.types import Passage

pytestmark = pytest.mark.enable_socket


@pytest.fixture(scope="module")
def tiny_server(tiny_lm):
    app = create_app(tiny_lm, model_name="tiny", limits=ServeLimits(max_tokens=64, max_request_bytes=8000))
    with serving(app) as url:
        yield url, app


def client(url, **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="sk-test-not-a-secret", max_retries=0, **kw)


def test_chat_completions_with_logprobs_and_a_stream_that_adds_up(tiny_server):
    url, _ = tiny_server
    c = client(url)
    msgs = [{"role": "user", "content": "Say something."}]
    r = c.chat.completions.create(
        model="tiny", messages=msgs, max_tokens=12, temperature=0, logprobs=True, top_logprobs=3
    )
    choice = r.choices[0]
    assert choice.finish_reason == "length" and r.usage.completion_tokens == 12 and r.usage.prompt_tokens > 0
    content = choice.logprobs.content
    assert len(content) == 12 and all(len(t.top_logprobs) == 3 and t.logprob <= 0 for t in content)
    assert content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob
    chunks = list(c.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, temperature=0, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == choice.message.content
    assert chunks[-1].choices[0].finish_reason == "length"
    assert [m.id for m in c.models.list().data] == ["tiny"]


def test_completions_with_legacy_logprobs_stop_and_several_prompts(tiny_server):
    url, _ = tiny_server
    c = client(url)
    r = c.completions.create(model="tiny", prompt="User: hi\nAssistant:", max_tokens=10, temperature=0, logprobs=2)
    text = r.choices[0].text
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens).strip() == text.strip() and len(lp.top_logprobs[0]) == 2 and lp.text_offset[0] == 0
    stopped = c.completions.create(
        model="tiny", prompt="User: hi\nAssistant:", max_tokens=10, temperature=0, stop=[text.strip()[3:5]]
    )
    assert stopped.choices[0].finish_reason == "stop" and text.strip()[3:5] not in stopped.choices[0].text
    two = c.completions.create(
        model="tiny", prompt=["User: hi\nAssistant:", "User: yo\nAssistant:"], max_tokens=5, temperature=0
    )
    assert [ch.index for ch in two.choices] == [0, 1] and two.choices[0].text == c.completions.create(
        model="tiny", prompt="User: hi\nAssistant:", max_tokens=5, temperature=0
    ).choices[0].text
    seeded = [
        c.completions.create(model="tiny", prompt="User: hi\nAssistant:", max_tokens=8, temperature=1.0, seed=7)
        .choices[0]
        .text
        for _ in range(2)
    ]
    assert seeded[0] == seeded[1]  # a seed repeats a sampled completion


def test_concurrent_requests_are_batched_and_answer_as_alone(tiny_server):
    url, app = tiny_server
    c = client(url)
    prompts = [f"User: question {i}\nAssistant:" for i in range(6)]
    alone = [c.completions.create(model="tiny", prompt=p, max_tokens=8, temperature=0).choices[0].text for p in prompts]
    before = len(app.state.engine.batches)
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        together = list(
            pool.map(
                lambda p: c.completions.create(model="tiny", prompt=p, max_tokens=8, temperature=0).choices[0].text,
                prompts,
            )
        )
    assert together == alone and max(app.state.engine.batches[before:]) > 1


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "other", "messages": [{"role": "user", "content": "x"}]}, 404, "does not exist"),
        ({"model": "tiny", "messages": []}, 400, "messages"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "n": 2}, 400, "n"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "top_logprobs": 21}, 400, "top_logprobs"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x"}], "max_tokens": 65}, 400, "limit"),
        (
            {"model": "tiny", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
            400,
            "tools",
        ),
        ({"model": "tiny", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, 400, "text only"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x" * 9000}]}, 413, "bytes"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "x" * 4050}], "max_tokens": 64}, 400, "context"),
    ],
)
def test_bad_requests_get_openai_error_objects(tiny_server, body, status, needle):
    url, _ = tiny_server
    r = httpx.post(f"{url}/chat/completions", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"] + str(err.get("param")) and err["type"]


def test_garbage_and_the_legacy_api_limits(tiny_server):
    url, _ = tiny_server
    r = httpx.post(f"{url}/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.post(f"{url}/completions", json={"model": "tiny", "prompt": "x", "echo": True})
    assert r.status_code == 400 and "echo" in r.json()["error"]["message"]
    r = httpx.post(f"{url}/completions", json={"model": "tiny", "prompt": ""})
    assert r.status_code == 400
    assert httpx.get(f"{url}/models/nope").status_code == 404
    # the server is still up
    assert httpx.get(f"{url}/models").status_code == 200


def test_a_full_queue_is_refused_at_once(tiny_lm):
    class Slow:
        def __init__(self, lm):
            self.lm = lm
            self.name, self.context_length, self.capabilities = lm.name, lm.context_length, lm.capabilities

        def count_tokens(self, text):
            return self.lm.count_tokens(text)

        def open_session(self):
            time.sleep(1.0)
            return self.lm.open_session()

        def score(self, *a):
            return self.lm.score(*a)

        def next_token(self, *a):
            return self.lm.next_token(*a)

    app = create_app(Slow(tiny_lm), model_name="tiny", limits=ServeLimits(max_pending=1, max_batch=1))
    with serving(app) as url:
        body = {"model": "tiny", "prompt": "User: hi\nAssistant:", "max_tokens": 2, "temperature": 0}
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            codes = sorted(
                pool.map(lambda _: httpx.post(f"{url}/completions", json=body, timeout=30).status_code, range(4))
            )
    assert 429 in codes and 200 in codes


def test_langchain_chat_openai_against_the_server(tiny_server):
    from langchain_openai import ChatOpenAI

    url, _ = tiny_server
    chat = ChatOpenAI(model="tiny", base_url=url, api_key="sk-test", temperature=0, max_tokens=8, max_retries=0)
    m = chat.bind(logprobs=True, top_logprobs=2).invoke("Say something.")
    content = m.response_metadata["logprobs"]["content"]
    assert len(content) == 8 and all(len(e["top_logprobs"]) == 2 for e in content)
    assert "".join(c.content for c in chat.stream("Say something.")) == m.content


def test_the_openai_backend_refuses_without_a_url_and_keeps_its_key_out_of_sight(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    from gatedrag.errors import ConfigError

    with pytest.raises(ConfigError, match="base_url"):
        load_openai_model(ModelConfig(backend="openai", name="m"))
    cfg = OpenAIConfig(base_url="http://127.0.0.1:9/v1", api_key="sk-very-secret")
    completer = OpenAICompleter("m", cfg)
    assert "sk-very-secret" not in repr(completer) and "sk-very-secret" not in cfg.model_dump_json()
    assert "sk-very-secret" not in repr(cfg)


def test_a_failing_server_degrades_the_answer():
    broken = FastAPI()

    @broken.post("/v1/completions")
    async def junk():
        return PlainTextResponse("{oops", media_type="application/json")

    with serving(broken) as url:
        lm = load_openai_model(
            ModelConfig(backend="openai", name="m", openai=OpenAIConfig(base_url=url, max_retries=0, timeout_s=5))
        )
        answer = GatedRAG(lm, None).ask("Where is Paris?")
    assert answer.degraded and answer.text == "" and any("failed" in (s.error or "") for s in answer.steps)


def test_a_server_that_times_out_degrades_the_answer_without_hanging():
    slow = FastAPI()

    @slow.post("/v1/completions")
    async def never():
        import asyncio

        await asyncio.sleep(30)

    with serving(slow) as url:
        lm = load_openai_model(
            ModelConfig(backend="openai", name="m", openai=OpenAIConfig(base_url=url, max_retries=1, timeout_s=0.3))
        )
        t = time.perf_counter()
        answer = GatedRAG(lm, None).ask("Where is Paris?")
        took = time.perf_counter() - t
    assert answer.degraded and "Timeout" in " ".join(s.error or "" for s in answer.steps) and took < 10


@pytest.fixture(scope="module")
def gemma_f32():
    from gatedrag.errors import ModelNotInstalledError
    from gatedrag.lm.hf import HFLanguageModel

    try:
        return HFLanguageModel.load(ModelConfig(name="gemma-3-270m", top_k=5, dtype="float32"))
    except ModelNotInstalledError as err:
        pytest.skip(str(err))


@pytest.mark.model
def test_the_same_question_in_process_and_through_the_server(gemma_f32):
    """Greedy: the openai backend through `gatedrag serve` writes what the model writes in-process,
    and the gate decides the same (token probabilities are the model's either way). In float32:
    in bfloat16 a near-tie can flip between decoding on a kept cache (in-process) and reading the
    prompt afresh (each remote request), so the texts may part after a few sentences."""
    gemma_lm = gemma_f32
    retriever = BM25Retriever.build(
        [
            Passage(
                id="a",
                title="Eiffel Tower",
                text="The Eiffel Tower is a wrought-iron tower in Paris, France, built in 1889.",
            ),
            Passage(id="b", title="Louvre", text="The Louvre is an art museum in Paris."),
        ]
    )
    cfg = PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.2)]),
        decoding={"max_answer_tokens": 48},
        policy={"max_retrievals": 1},
    )
    q = "In which year was the Eiffel Tower built?"
    local = GatedRAG(gemma_lm, retriever, cfg).ask(q)
    app = create_app(gemma_lm, model_name="gemma-3-270m")
    with serving(app) as url:
        remote_lm = load_openai_model(
            ModelConfig(backend="openai", name="gemma-3-270m", top_k=5, openai=OpenAIConfig(base_url=url))
        )
        remote = GatedRAG(remote_lm, retriever, cfg).ask(q)
    assert remote.text == local.text and remote.answer == local.answer
    decisions = lambda a: [(s.text, s.decision.action if s.decision else None) for s in a.steps if s.kind == "sentence"]  # noqa: E731
    assert decisions(remote) == decisions(local) and remote.counts.retrievals == local.counts.retrievals


def test_an_abandoned_row_stops_decoding_and_the_others_go_on():
    from helpers.scripted import ScriptedLM

    from gatedrag.serve.engine import Engine, Job

    lm = ScriptedLM([("One.", 0.9), ("Two.", 0.9), ("Three.", 0.9)], [])
    engine = Engine(lm, batch_window_s=0.2)
    left = Job(prompt="a", max_tokens=50)
    left.on_piece = lambda piece: left.abandoned.set()  # the client leaves after the first piece
    stayed = Job(prompt="b", max_tokens=50)
    futures = [engine.submit(left), engine.submit(stayed)]
    gone, kept = (f.result(timeout=10) for f in futures)
    engine.close()
    assert gone.text == "One." and kept.text.count(".") == 3 and engine.batches == [2]  # scripted tokens: no spaces


def test_half_sent_and_slow_requests_do_not_stop_the_server(tiny_server):
    import socket
    from urllib.parse import urlparse

    url, _ = tiny_server
    where = urlparse(url)
    stalled = []
    for _ in range(4):  # clients that promise a body and send half of it, then stall
        s = socket.create_connection((where.hostname, where.port), timeout=5)
        s.sendall(
            b'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"mod'
        )
        stalled.append(s)
    answer = client(url).completions.create(model="tiny", prompt="Q: x\nA:", max_tokens=3)
    assert answer.choices[0].text is not None  # the others are served meanwhile
    for s in stalled:
        s.close()
    assert client(url).models.list().data[0].id == "tiny"
