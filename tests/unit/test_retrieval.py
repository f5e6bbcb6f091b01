import json

import pytest
from pydantic import ValidationError

from gatedrag.errors import CorpusError, RetrievalIndexError
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.retrieval.corpus import corpus_sha256, demo_corpus_path, load_corpus
from gatedrag.retrieval.query import build_query, truncate_words
from gatedrag.retrieval.rank_bm25 import RankBM25Retriever
from gatedrag.types import Passage, TokenStep


def write(path, lines):
    path.write_text("".join(lines))
    return path


def test_corpus_errors_name_file_and_line(tmp_path):
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "missing.jsonl")
    with pytest.raises(CorpusError, match="directory"):
        load_corpus(tmp_path)
    bad = write(tmp_path / "bad.jsonl", ['{"id": "a", "text": "x"}\n', "\n", "{oops\n"])
    with pytest.raises(CorpusError, match="line 3: not valid JSON"):
        load_corpus(bad)
    nofield = write(tmp_path / "nf.jsonl", ['{"id": "a"}\n'])
    with pytest.raises(CorpusError, match="line 1: missing field"):
        load_corpus(nofield)
    dup = write(tmp_path / "dup.jsonl", ['{"id": "a", "text": "x"}\n', '{"id": "a", "text": "y"}\n'])
    with pytest.raises(CorpusError, match="line 2: duplicate id"):
        load_corpus(dup)
    with pytest.raises(CorpusError, match="empty"):
        load_corpus(write(tmp_path / "empty.jsonl", ["\n"]))
    binary = tmp_path / "bin.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CorpusError, match="UTF-8"):
        load_corpus(binary)


def test_demo_corpus_is_small_and_valid():
    path = demo_corpus_path()
    assert path.stat().st_size <= 2 * 1024 * 1024
    passages = load_corpus(path)
    assert len(passages) > 2000 and all(p.text for p in passages)


def test_bm25s_save_load_roundtrip_and_staleness(tmp_path):
    corpus = write(
        tmp_path / "c.jsonl",
        [
            json.dumps({"id": str(i), "title": t, "text": x}) + "\n"
            for i, (t, x) in enumerate(
                [
                    ("Paris", "Paris is the capital of France."),
                    ("Berlin", "Berlin is the capital of Germany."),
                    ("Jaws", "Jaws is a 1975 film directed by Steven Spielberg."),
                ]
            )
        ],
    )
    idx = tmp_path / "idx"
    r = BM25Retriever.from_corpus(corpus, index_dir=idx)
    hits = r.retrieve(["Who directed Jaws?", "capital of Germany", "the of and"], k=2)
    assert hits[0][0].passage.title == "Jaws" and hits[0][0].rank == 1
    assert hits[1][0].passage.id == "1"
    assert hits[2] == []  # only stopwords: nothing matches
    assert not list(idx.glob("*.pkl")) and (idx / "gatedrag-index.json").exists()
    loaded = BM25Retriever.load(idx, expect_sha256=corpus_sha256(corpus))
    assert [h.passage.id for h in loaded.retrieve(["Who directed Jaws?"], k=3)[0]] == [
        h.passage.id for h in r.retrieve(["Who directed Jaws?"], k=3)[0]
    ]
    corpus.write_text(corpus.read_text() + json.dumps({"id": "9", "text": "Rome is in Italy."}) + "\n")
    with pytest.raises(RetrievalIndexError, match="another version"):
        BM25Retriever.load(idx, expect_sha256=corpus_sha256(corpus))
    assert len(BM25Retriever.from_corpus(corpus, index_dir=idx).passages) == 4  # rebuilt when stale
    with pytest.raises(RetrievalIndexError, match="no gatedrag index"):
        BM25Retriever.load(tmp_path / "nothing")


def test_bm25s_and_rank_bm25_agree_on_real_queries(data_dir):
    """As bm25s' own comparison tests do: same tokens, same top results on real HotpotQA queries."""
    passages = load_corpus(data_dir / "hotpotqa" / "corpus.jsonl")
    questions = [q["question"] for q in json.loads((data_dir / "hotpotqa" / "dev.json").read_text())[:40]]
    a = BM25Retriever.build(passages, method="robertson").retrieve(questions, k=5)
    b = RankBM25Retriever(passages).retrieve(questions, k=5)
    top1 = sum(x[0].passage.id == y[0].passage.id for x, y in zip(a, b)) / len(questions)
    overlap = sum(len({h.passage.id for h in x} & {h.passage.id for h in y}) for x, y in zip(a, b)) / (
        5 * len(questions)
    )
    assert top1 >= 0.9 and overlap >= 0.85, (top1, overlap)


def test_query_masks_doubtful_tokens_and_truncates():
    tokens = [
        TokenStep(token_id=i, text=t, logprob=-0.01, entropy=0.1)
        for i, t in enumerate(["Jaws", " was", " directed", " by", " Bob"])
    ]
    assert build_query("Who directed Jaws?", tokens, {4}) == "Jaws was directed by"
    assert build_query("Who directed Jaws?", tokens, set(range(5))) == "Who directed Jaws?"
    prev = "Jaws is a 1975 film. "
    assert build_query("Who?", tokens, {4}, previous=prev) == "Jaws is a 1975 film. Jaws was directed by"
    assert build_query("Who?", tokens, {4}, previous=prev, include_question=True).startswith("Who? Jaws is")
    assert build_query("Who?", tokens, set(range(5)), previous=prev) == "Who? Jaws is a 1975 film."
    assert truncate_words("one two three four", 2) == "three four"
    assert truncate_words("one two three four", 2, keep="first") == "one two"
    assert (
        len(
            build_query(
                "q", [TokenStep(token_id=0, text=" w", logprob=0.0, entropy=0.0)] * 100, set(), max_words=64
            ).split()
        )
        == 64
    )


def test_passage_model_rejects_extra_fields():
    with pytest.raises(ValidationError):
        Passage(id="a", text="x", url="y")  # type: ignore[call-arg]
