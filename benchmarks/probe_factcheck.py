"""Two quick diagnostics of the fact checker on the default model (issue 20), run by hand:

``cost N``: where the time of a sweep of N SciFact train claims (every forced variant) goes: each
model call's prompts and seconds.

``labels``: does the model judge short SciFact train claims right with only their cited abstracts
as the corpus (one forced search, top 1)? ``--refuted-only`` takes 24 CONTRADICT claims.

    HF_HUB_OFFLINE=1 python benchmarks/probe_factcheck.py cost 4
    HF_HUB_OFFLINE=1 python benchmarks/probe_factcheck.py labels [--refuted-only]
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from bench_factcheck import CORPUS, SCIFACT, as_claims, checker, labelled

from gatedrag.config import ModelConfig
from gatedrag.evals.claims import load_scifact
from gatedrag.evals.factcheck_eval import forced_variants
from gatedrag.factcheck.checker import FactChecker
from gatedrag.factcheck.config import FactCheckConfig
from gatedrag.factory import build_model
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage


def cost(n: int) -> None:
    import gatedrag.factcheck.checker as checker_module
    import gatedrag.factcheck.consistency as consistency_module

    base = FactCheckConfig(batch_size=n)
    fc = checker(base)
    stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0, 0])

    def timed(name, fn, prompts_of):
        def call(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            s = stats[name]
            s[0], s[1], s[2] = s[0] + 1, s[1] + time.perf_counter() - t0, s[2] + prompts_of(a)
            print(f"{name}: {prompts_of(a)} prompts {time.perf_counter() - t0:.1f} s", flush=True)
            return out

        return call

    fc.lm.next_token = timed("next_token", fc.lm.next_token, lambda a: len(a[0]))
    fc.lm.score = timed("score", fc.lm.score, lambda a: len(a[0]))
    complete = timed("complete", consistency_module.complete, lambda a: len(a[1]))
    consistency_module.complete = checker_module.complete = complete
    claims = as_claims(labelled("train", None, n))
    t0 = time.perf_counter()
    out = fc.sweep([c.claim for c in claims], forced_variants(base))
    print(f"total {time.perf_counter() - t0:.0f} s for {n} claims")
    for name, (calls, seconds, prompts) in stats.items():
        print(f"  {name}: {calls} calls, {prompts} prompts, {seconds:.0f} s")
    for name, verdicts in out.items():
        print(f"  {name}: {[(v.label, v.searches, v.llm_calls) for v in verdicts]}")


def labels(refuted_only: bool) -> None:
    docs = {d["id"]: d for d in map(json.loads, CORPUS.open(encoding="utf-8"))}
    claims = [c for c in load_scifact(SCIFACT / "claims_train.jsonl") if c.label != "nei" and len(c.claim) < 70]
    refuted = [c for c in claims if c.label == "refuted"]
    picked = refuted[6:30] if refuted_only else [c for c in claims if c.label == "supported"][:6] + refuted[:6]
    passages = [Passage(id=d, title=docs[d]["title"], text=docs[d]["text"]) for c in picked for d in c.evidence]
    config = FactCheckConfig(
        rationales=1, force_route="deep_search", deep_rounds=1, top_k=1, rationale_sentences=0, batch_size=len(picked)
    )
    fc = FactChecker(build_model(ModelConfig(), progress=print), BM25Retriever.build(passages), config)
    t0 = time.perf_counter()
    verdicts = fc.batch([c.claim for c in picked])
    print(f"{time.perf_counter() - t0:.0f} s")
    for c, v in zip(picked, verdicts):
        print(c.id, c.label, "->", v.label, round(v.confidence, 2), c.claim)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("cost").add_argument("n", type=int)
    sub.add_parser("labels").add_argument("--refuted-only", action="store_true")
    args = p.parse_args()
    cost(args.n) if args.cmd == "cost" else labels(args.refuted_only)


if __name__ == "__main__":
    main()
