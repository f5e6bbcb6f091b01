"""Retrievers both ways: gatedrag's retrievers pass langchain-tests' retriever suite on a real
corpus; LangChain retrievers and vector stores serve the pipeline, and a failing one degrades it."""

from __future__ import annotations

import time

import pytest
from helpers.scripted import ScriptedLM
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from langchain_tests.integration_tests import RetrieversIntegrationTests

from gatedrag.config import GateConfig, PipelineConfig, RetrievalConfig, TokenRAGRule
from gatedrag.connectors.langchain import GatedragRetriever, LangChainRetriever, to_passage
from gatedrag.errors import InputError, RetrievalError
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage

from ...conftest import DATA


@pytest.fixture(scope="module")
def musique_retrieval(tmp_path_factory) -> RetrievalConfig:
    corpus = DATA / "musique" / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"benchmark data not found at {DATA}")
    return RetrievalConfig(corpus=corpus, index_dir=tmp_path_factory.mktemp("bm25"))


class TestGatedragRetrieverStandard(RetrieversIntegrationTests):
    """langchain-tests' conformance suite (k in the constructor and per call, sync and async)."""

    @pytest.fixture(autouse=True)
    def _corpus(self, musique_retrieval):
        self._retrieval = musique_retrieval

    @property
    def retriever_constructor(self) -> type[GatedragRetriever]:
        return GatedragRetriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"retrieval": self._retrieval}

    @property
    def retriever_query_example(self) -> str:
        return "Who founded the record label of the singer?"


class TestGatedragHybridRetrieverStandard(TestGatedragRetrieverStandard):
    """The same suite on hybrid retrieval (BM25 + MiniLM dense, fused), the dense index built once."""

    @pytest.fixture(autouse=True)
    def _corpus(self, musique_retrieval):
        pytest.importorskip("faiss")
        pytest.importorskip("sentence_transformers")
        self._retrieval = musique_retrieval.model_copy(update={"backend": "hybrid"})


def test_documents_carry_the_passage_fields(musique_retrieval):
    r = GatedragRetriever(retrieval=musique_retrieval, k=3)
    direct = r.retriever.retrieve(["Green Party"], 3)[0]
    docs = r.invoke("Green Party")
    assert [d.id for d in docs] == [h.passage.id for h in direct]
    assert [d.metadata["rank"] for d in docs] == [1, 2, 3]
    assert docs[0].page_content == direct[0].passage.text and docs[0].metadata["title"] == direct[0].passage.title
    wrapped = GatedragRetriever.from_retriever(r.retriever, k=1)
    assert wrapped.retriever is r.retriever and [d.id for d in wrapped.invoke("Green Party")] == [docs[0].id]


def test_bad_queries_and_k_are_refused(musique_retrieval):
    r = GatedragRetriever(retrieval=musique_retrieval)
    with pytest.raises(InputError):
        r.invoke("   ")
    with pytest.raises(InputError):
        r.invoke("Green Party", k=0)
    with pytest.raises(InputError):
        GatedragRetriever.from_retriever("not a retriever")  # type: ignore[arg-type]


def store() -> InMemoryVectorStore:
    docs = [
        Document(page_content="Paris is the capital of France.", id="paris", metadata={"title": "Paris", "year": 2024}),
        Document(page_content="Rome is the capital of Italy.", id="rome", metadata={"title": "Rome", "src": object()}),
    ]
    return InMemoryVectorStore.from_documents(docs, DeterministicFakeEmbedding(size=32))


def test_a_vector_store_keeps_metadata_and_ranks():
    hits = LangChainRetriever(store()).retrieve(["capital of France", "Italy"], k=2)
    assert len(hits) == 2 and all(len(h) == 2 for h in hits)
    by_id = {h.passage.id: h.passage for h in hits[0]}
    assert by_id["paris"].title == "Paris" and by_id["paris"].metadata == {"year": 2024}
    assert by_id["rome"].metadata["src"].startswith("<object")  # not JSON: kept as its repr
    assert [h.rank for h in hits[0]] == [1, 2] and hits[0][0].score == 1.0  # no score of its own: 1 / rank


def test_a_document_without_id_gets_a_stable_one():
    a, b = to_passage(Document(page_content="same text")), to_passage(Document(page_content="same text"))
    assert a.id == b.id and a.id.startswith("sha1:")
    with pytest.raises(Exception, match="not a langchain Document"):
        to_passage("text")


class Broken(BaseRetriever):
    mode: str = "raise"

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        if self.mode == "raise":
            raise ConnectionError("store unreachable")
        if self.mode == "slow":
            time.sleep(2)
            return []
        return ["not a document"]  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("mode", "message"),
    [("raise", "store unreachable"), ("junk", "not a langchain Document"), ("slow", "within 0.2 s")],
)
def test_a_misbehaving_retriever_raises_a_retrieval_error(mode, message):
    with pytest.raises(RetrievalError, match=message):
        LangChainRetriever(Broken(mode=mode), timeout_s=0.2).retrieve(["q"], k=2)


def test_the_pipeline_answers_on_through_a_failing_langchain_retriever():
    lm = ScriptedLM(closed_book=[("So the answer is Lyon.", 0.2)], with_context=[("So the answer is Paris.", 0.9)])
    cfg = PipelineConfig(gate=GateConfig(rules=[TokenRAGRule(threshold=0.5)]))
    answer = GatedRAG(lm, LangChainRetriever(Broken(mode="junk")), cfg).ask("Capital of France?")
    failed = [s for s in answer.steps if s.kind == "retrieval"]
    assert answer.answer == "Lyon" and answer.degraded
    assert failed and "not a langchain Document" in failed[0].error
    ok = GatedRAG(lm, LangChainRetriever(store()), cfg).ask("Capital of France?")
    assert ok.answer == "Paris" and not ok.degraded and {p.id for p in ok.sources} <= {"paris", "rome"}


def test_the_wrong_kind_of_retriever_is_refused():
    with pytest.raises(InputError):
        LangChainRetriever(BM25Retriever.build([Passage(id="1", text="Paris is in France.")]))  # type: ignore[arg-type]
