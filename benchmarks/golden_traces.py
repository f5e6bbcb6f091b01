"""Golden traces: the controller's behaviour on every method and edge config, in seconds.

A tiny random model (the tests' 2-layer Qwen2 with a character tokenizer) answers five questions
in batches of three under every method of the grid and about twenty edge configurations
(budgets, vetoes, drafts, knowledge control, fixed-length segments, scheduled retrieval, corpus
signals with a fake backend), with a BM25 retriever, a failing one and none. Its distributions
are near-uniform, so thresholds are set where its signals fire on some sentences and not on
others. ``save`` writes every answer (its steps, counts and text; wall times zeroed) to
``.bench/golden_traces.json``; ``check`` runs again and prints every answer that differs, with its
first differing step. A refactor meant to keep behaviour runs ``save`` before and ``check`` after;
the real-model check is ``benchmarks/reproduce.py``. The file depends on torch's kernels, so it is
kept per machine, not committed.

    python benchmarks/golden_traces.py save        # before a change
    python benchmarks/golden_traces.py check       # after it; or: check NAME ... for some cases
"""

from __future__ import annotations

import json
import sys
from typing import Any

from common import OUT

TOKEN_RAG, FLARE, RIND = 0.98475, 0.0139, 4.0
"""Thresholds at which the tiny model's signals fire on some sentences and not on others."""
QUESTIONS = [
    "Who wrote Hamlet alpha?",
    "Where is Beta gamma?",
    "When was Delta born?",
    "What is theta iota?",
    "Kappa or Zeta?",
]
SMALL = {"decoding": {"max_answer_tokens": 48, "max_sentence_tokens": 7, "batch_size": 3}, "prompt": "cot"}


def tr(threshold: float, **kw: Any) -> dict[str, Any]:
    return {"signal": "token_rag", "threshold": threshold, **kw}


EDGE_CASES: dict[str, dict[str, Any]] = {
    "tr0": {"gate": {"rules": [tr(0.0)]}},
    "budget-1": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"max_retrievals": 1}},
    "budget-0": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"max_retrievals": 0}},
    "first-carry": {
        "gate": {"rules": [tr(TOKEN_RAG)]},
        "policy": {"retrieve_first": True},
        "retrieval": {"carry_passages": 2, "query_with_question": True, "query_with_previous": 1},
    },
    "drop-passages": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"keep_passages": False}},
    "final-unchecked": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"check_final_sentence": False}},
    "combine-all": {"gate": {"rules": [tr(TOKEN_RAG), {"signal": "flare", "theta": FLARE}], "combine": "all"}},
    "rest": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"paper": {"accept_after_retrieval": "rest"}}},
    "regenerate": {"gate": {"rules": [tr(TOKEN_RAG)]}, "policy": {"paper": {"regenerate_without_new_passages": True}}},
    "draft": {"draft": {"rules": [{"signal": "flare", "theta": FLARE}]}, "gate": {"rules": [tr(TOKEN_RAG)]}},
    "draft-rest": {
        "draft": {"rules": [tr(TOKEN_RAG)]},
        "gate": {"rules": [tr(TOKEN_RAG)]},
        "policy": {"paper": {"accept_after_retrieval": "rest"}},
    },
    "draft-budget-0": {"draft": {"rules": [tr(0.0)]}, "policy": {"max_retrievals": 0}},
    "adjust": {
        "gate": {"rules": [tr(0.0), {"signal": "confidence_gain", "threshold": 0.0}]},
        "policy": {"max_retrievals": 1},
    },
    "adjust-alpha": {
        "gate": {"rules": [tr(TOKEN_RAG), {"signal": "confidence_gain", "threshold": 0.3}]},
        "policy": {"max_retrievals": 2},
        "control": {"alpha": 0.8, "adaptive": False, "epsilon": 1.0},
    },
    "adjust-rest": {
        "gate": {"rules": [tr(0.0), {"signal": "confidence_gain", "threshold": 0.0}]},
        "policy": {"paper": {"accept_after_retrieval": "rest"}},
    },
    "control-always": {
        "gate": {"rules": [tr(TOKEN_RAG)]},
        "policy": {"retrieve_first": True, "control_mode": "always"},
    },
    "segments": {"gate": {"rules": [tr(TOKEN_RAG)]}, "decoding": {"segment_tokens": 9}},
    "scheduled-question": {
        "gate": {"rules": [tr(TOKEN_RAG)]},
        "policy": {"scheduled_retrieval": True, "max_retrievals": 2, "paper": {"scheduled_query": "question"}},
    },
    "corpus-default": {"gate": {"rules": [{"signal": "entity_freq"}, {"signal": "cooc"}, tr(TOKEN_RAG, act=False)]}},
}
WITH_EVERY_RETRIEVER = ("budget-1", "draft", "adjust", "gated")


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cases() -> dict[str, dict[str, Any]]:
    from gatedrag.config import PipelineConfig
    from gatedrag.evals.baselines import METHODS, method_config

    out = {}
    for m in METHODS:
        data = merge(method_config(m, "hotpotqa").model_dump(mode="json"), SMALL)
        for r in data["gate"]["rules"]:
            r.update(
                {"token_rag": {"threshold": TOKEN_RAG}, "flare": {"theta": FLARE}, "rind": {"threshold": RIND}}.get(
                    r["signal"], {}
                )
            )
        out[m] = data
    for name, over in EDGE_CASES.items():
        out[name] = merge(merge(PipelineConfig().model_dump(mode="json"), SMALL), over)
    return out


def components() -> tuple[Any, Any, Any, Any]:
    import torch

    from gatedrag.evals.tiny import tiny_qwen2
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.types import CorpusCount, Passage, Triple

    torch.set_num_threads(1)
    lm = tiny_qwen2()
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    passages = [
        Passage(id=str(i), title=f"T{i}", text=" ".join(words[(i + j) % 10] for j in range(i % 5 + 2)))
        for i in range(30)
    ]

    class FakeStats:  # deterministic counts: some entities rare, some claims unsupported
        name = "fake"

        def total_tokens(self) -> int:
            return 2_000_000

        def count(self, phrase: str) -> CorpusCount:
            return CorpusCount(terms=[phrase], count=len(phrase) % 3, total_tokens=2_000_000)

        def cooccurrence(
            self, terms: list[str], *, window: int | None = None, max_clause_freq: int | None = None
        ) -> CorpusCount:
            return CorpusCount(terms=list(terms), count=sum(map(len, terms)) % 2, window=window or 100)

    class FakeExtractor:
        name = "fake"

        def entities(self, questions: list[str]) -> list[list[str]]:
            return [[w for w in q.split() if w[:1].isupper()] for q in questions]

        def triples(self, sentences: list[str]) -> list[list[Triple]]:
            out = []
            for s in sentences:
                ws = [w for w in s.split() if len(w) > 2]
                out.append([Triple(head=ws[0], relation="r", tail=ws[-1])] if len(ws) >= 2 else [])
            return out

    return lm, BM25Retriever.build(passages), FakeStats(), FakeExtractor()


class Failing:
    name = "failing"

    def retrieve(self, queries: list[str], k: int) -> list[list[Any]]:
        raise ConnectionError("down")


def run(name: str, data: dict[str, Any], parts: tuple[Any, Any, Any, Any]) -> dict[str, list[dict[str, Any]]]:
    from gatedrag.config import PipelineConfig
    from gatedrag.factory import Components, build_rag

    lm, bm25, stats, extractor = parts
    config = PipelineConfig.model_validate(data)
    out = {}
    for label, retriever in (("bm25", bm25), ("failing", Failing()), ("none", None)):
        if label != "bm25" and name not in WITH_EVERY_RETRIEVER:
            continue
        rag = build_rag(config, Components(lm=lm, retriever=retriever, corpus=stats, extractor=extractor))
        answers = []
        for a in rag.batch(QUESTIONS):
            d = a.model_dump(mode="json", exclude={"events"})
            d["steps"] = [s.model_dump(mode="json") for s in a.steps]
            d["counts"]["wall_time_s"] = 0
            answers.append(d)
        out[label] = answers
    return out


def main() -> None:
    mode, only = sys.argv[1], set(sys.argv[2:])
    if mode not in ("save", "check"):
        raise SystemExit("usage: golden_traces.py save|check [NAME ...]")
    path = OUT / "golden_traces.json"
    gold = json.loads(path.read_text()) if path.exists() else {}
    parts = components()
    differing = 0
    for name, data in cases().items():
        if only and name not in only:
            continue
        if mode == "check" and name not in gold:
            print(f"{name}: no golden trace (a case added since `save`)", flush=True)
            continue
        got = run(name, data, parts)
        if mode == "save":
            gold[name] = got
            steps = sum(1 for a in got["bm25"] for s in a["steps"] if s["kind"] == "retrieval")
            print(f"{name}: {steps} retrieval steps", flush=True)
            continue
        for label, answers in got.items():
            for i, (a, b) in enumerate(zip(answers, gold[name][label])):
                a = {k: v for k, v in a.items() if k in b}  # a field added since `save` is not compared
                if a == b:
                    continue
                differing += 1
                first = next((j for j, (x, y) in enumerate(zip(a["steps"], b["steps"])) if x != y), None)
                print(f"DIFF {name} / {label} / question {i}: first differing step {first}", flush=True)
        print(f"{name}: {'same' if not differing else f'{differing} answers differ so far'}", flush=True)
    if mode == "save":
        OUT.mkdir(exist_ok=True)
        path.write_text(json.dumps(gold))
    elif differing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
