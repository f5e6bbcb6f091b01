"""Retrieval: the Retriever protocol, JSONL corpora, BM25 (bm25s; rank-bm25 as an alternative),
dense (MiniLM + FAISS), hybrid (reciprocal rank fusion) and re-ranking of accumulated passages."""

from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus

__all__ = ["Retriever", "demo_corpus_path", "load_corpus"]
