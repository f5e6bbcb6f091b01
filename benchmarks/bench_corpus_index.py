"""Infini-gram corpus index: build time and size per million tokens, and query latency (count and
two-term co-occurrence, p50/p95) through the Python API and through `gatedrag corpus serve`.

python benchmarks/bench_corpus_index.py [--passages 100000] [--queries 600]

Corpora: the pooled corpora of ../shared/data (hotpotqa + 2wikimultihopqa + musique + popqa, 17,078
passages) and a 100k-passage corpus made from them: passages drawn with replacement from the pool,
each with its sentences shuffled (so the text is not a verbatim copy) under a new id. Queries: the
entities spaCy finds in the first HotpotQA dev questions (counts), and pairs of entities from the
same question (co-occurrence within the index's default window of one passage).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import tempfile
import time
from pathlib import Path

from common import DATA, OUT, save

POOL = ("hotpotqa", "2wikimultihopqa", "musique", "popqa")


def pooled_passages() -> list[dict]:
    out = []
    for name in POOL:
        with open(DATA / name / "corpus.jsonl", encoding="utf-8") as fh:
            for line in fh:
                p = json.loads(line)
                out.append({"id": f"{name}:{p['id']}", "title": p.get("title", ""), "text": p["text"]})
    return out


def write(passages: list[dict], path: Path) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(json.dumps(p, ensure_ascii=False) + "\n")
    return path


def synthetic(pool: list[dict], n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        src = rng.choice(pool)
        sentences = re.split(r"(?<=[.!?])\s+", src["text"])
        rng.shuffle(sentences)
        out.append({"id": f"syn{i}", "title": src["title"], "text": " ".join(sentences)})
    return out


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(1000 * statistics.median(s), 3),
        "p95_ms": round(1000 * s[int(0.95 * (len(s) - 1))], 3),
        "n": len(s),
    }


def timed(fn, items) -> list[float]:
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--passages", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=600)
    args = ap.parse_args()

    from gatedrag.corpus.build import build_index
    from gatedrag.corpus.client import InfiniGramClient
    from gatedrag.corpus.extract import SpacyExtractor
    from gatedrag.corpus.local import LocalIndex
    from gatedrag.corpus.server import make_server

    pool = pooled_passages()
    OUT.mkdir(exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="corpus-index-", dir=OUT))  # .bench/ is git-ignored
    result: dict = {"builds": {}}
    for label, passages in (("pooled", pool), (f"synthetic_{args.passages // 1000}k", synthetic(pool, args.passages))):
        corpus = write(passages, work / f"{label}.jsonl")
        t0 = time.perf_counter()
        m = build_index(corpus, work / f"idx-{label}", tokenizer="gpt2")
        seconds = time.perf_counter() - t0
        mtok = m.tokens / 1e6
        result["builds"][label] = {
            "passages": m.documents,
            "tokens": m.tokens,
            "build_s": round(seconds, 2),
            "build_s_per_million_tokens": round(seconds / mtok, 2),
            "size_mb": round(m.size_bytes / 1e6, 1),
            "mb_per_million_tokens": round(m.size_bytes / 1e6 / mtok, 2),
            "bytes_per_token": round(m.size_bytes / m.tokens, 2),
            "doc_tokens_p50": m.doc_tokens_p50,
        }
        print(label, result["builds"][label], flush=True)
    index = work / f"idx-synthetic_{args.passages // 1000}k"

    questions = [q["question"] for q in json.loads((DATA / "hotpotqa" / "dev.json").read_text())]
    entity_lists = SpacyExtractor().entities(questions[: args.queries // 2])
    entities = [e for ents in entity_lists for e in ents][: args.queries]
    pairs = [(ents[0], ents[1]) for ents in entity_lists if len(ents) >= 2]
    pairs += [(a, b) for a, b in zip(entities[::2], entities[1::2])][: max(0, args.queries // 2 - len(pairs))]

    local = LocalIndex(index)
    cnf = LocalIndex(index, cooccurrence="cnf")
    timed(local.count, entities[:50])  # warm the page cache
    lat = {
        "python_api": {
            "count": percentiles(timed(local.count, entities)),
            "cooccurrence_document": percentiles(timed(local.cooccurrence, [list(p) for p in pairs])),
            "cooccurrence_cnf": percentiles(timed(cnf.cooccurrence, [list(p) for p in pairs])),
        }
    }
    server = make_server(index, port=0, name="bench")
    server.start_background()
    try:
        client = InfiniGramClient(server.url, index="bench", retries=1, window=local.window, cooccurrence="document")
        raw = InfiniGramClient(server.url, index="bench", retries=1, window=local.window)
        timed(client.count, entities[:50])
        lat["http_server"] = {
            "count": percentiles(timed(client.count, entities)),
            "cooccurrence_document": percentiles(timed(client.cooccurrence, [list(p) for p in pairs])),
            "cooccurrence_cnf": percentiles(timed(raw.cooccurrence, [list(p) for p in pairs])),
        }
    finally:
        server.shutdown()
        server.server_close()
    zero = sum(local.cooccurrence(list(p)).count == 0 for p in pairs)
    zero_cnf = sum(cnf.cooccurrence(list(p)).count == 0 for p in pairs)
    result["latency_on"] = str(index.name)
    result["window_tokens"] = local.window
    result["queries"] = {
        "entities": len(entities),
        "pairs": len(pairs),
        "pairs_zero_document": zero,
        "pairs_zero_cnf": zero_cnf,
    }
    result["latency"] = lat
    save("corpus_index", result)


if __name__ == "__main__":
    main()
