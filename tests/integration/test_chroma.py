"""A real vector database end to end: Chroma's own server on 127.0.0.1 (started here), reached
through langchain-chroma, holding MuSiQue paragraphs embedded with MiniLM; the default model
answers through the gated Runnable, retrieving from it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time

import pytest

pytestmark = [pytest.mark.model, pytest.mark.enable_socket]

QUESTIONS = 8  # the paragraphs of the first 8 MuSiQue questions (20 each) go into the collection


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma(tmp_path_factory):
    chromadb = pytest.importorskip("chromadb")
    exe = shutil.which("chroma")
    if exe is None:
        pytest.skip("the chroma server command is not installed")
    port, path = free_port(), tmp_path_factory.mktemp("chroma")
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        [exe, "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    client = None
    for _ in range(200):
        try:
            client = chromadb.HttpClient(
                host="127.0.0.1", port=port, settings=chromadb.Settings(anonymized_telemetry=False)
            )
            client.heartbeat()
            break
        except Exception:
            client = None
            time.sleep(0.1)
    if client is None:
        proc.kill()
        pytest.fail("the chroma server did not start")
    yield client
    proc.terminate()
    proc.wait(timeout=20)


def test_the_gated_runnable_answers_from_a_chroma_server(chroma, data_dir, default_rag):
    from langchain_chroma import Chroma
    from langchain_core.documents import Document

    from gatedrag.connectors.langchain import GatedragEmbeddings, GatedRAGRunnable, LangChainRetriever, answer_of
    from gatedrag.pipeline import GatedRAG

    rows = [
        json.loads(line) for line in (data_dir / "musique" / "train_100.jsonl").read_text().splitlines()[:QUESTIONS]
    ]
    docs = [
        Document(
            page_content=p["paragraph_text"],
            id=f"{r['id']}/{p['idx']}",
            metadata={"title": p["title"], "question": r["id"], "is_supporting": p["is_supporting"]},
        )
        for r in rows
        for p in r["paragraphs"]
    ]
    store = Chroma(client=chroma, collection_name="musique", embedding_function=GatedragEmbeddings())
    store.add_documents(docs, ids=[d.id for d in docs])
    assert chroma.get_collection("musique").count() == len(docs)

    question = rows[3]  # the waterfall in the country of the Bubye River
    retriever = LangChainRetriever(store.as_retriever(search_kwargs={"k": 3}), name="chroma")
    gated = GatedRAGRunnable.from_rag(
        GatedRAG(
            default_rag.lm,
            retriever,
            default_rag.config.model_copy(
                update={"policy": default_rag.config.policy.model_copy(update={"retrieve_first": True})}
            ),
        )
    )
    runs = []

    from langchain_core.callbacks import BaseCallbackHandler

    class Runs(BaseCallbackHandler):
        def on_retriever_end(self, documents, **kw):
            runs.append(documents)

    message = gated.invoke(question["question"], config={"callbacks": [Runs()]})
    answer = answer_of(message)
    assert answer.counts.retrievals >= 1 and len(runs) == answer.counts.retrievals
    found = [d for batch in runs for d in batch]
    assert found and all(d.id in {x.id for x in docs} for d in found)
    assert any(d.metadata.get("is_supporting") for d in found)  # metadata came through from Chroma
    assert any(p.metadata.get("question") for p in answer.sources)
    # an answer written from the database's passages (this 1.5B model rarely gets MuSiQue's
    # second hop right, so its correctness is not what this test checks)
    assert answer.finish_reason == "answer" and message.response_metadata["answer"]
    assert {p.id for p in answer.sources} <= {d.id for d in found}
