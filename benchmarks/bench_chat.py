"""Chat (issue 19), on the default model and the MuSiQue corpus:

``followups``: two-turn conversations from MuSiQue's ``question_decomposition``
(:mod:`gatedrag.evals.followups` says how the second turn is written). For each conversation, EM/F1
of the second turn answered (a) in a chat session after the first turn (the condense step rewrites
it from the history), (b) written out with the bridge entity, (c) as written with no history; how
often the condense step's question holds the first turn's answer (the model's, and the gold one).
Every turn goes through one :class:`~gatedrag.scheduler.Scheduler` (8 sessions at a time).
Resumable: one JSONL record per (conversation, condition).

    HF_HUB_OFFLINE=1 python benchmarks/bench_chat.py followups --limit 40 --out benchmarks/results/chat/followups.jsonl

``latency``: time to the first streamed sentence and turn latency (p50/p95), aggregate generated
tokens/s, for the same first turns answered one after another (``GatedRAG.stream``), as one static
batch (``GatedRAG.batch``) and through the scheduler by 1, 4 and 8 concurrent sessions; and which
answers differ from the serial ones.

    HF_HUB_OFFLINE=1 python benchmarks/bench_chat.py latency --questions 8 --out benchmarks/results/chat/latency.json
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import platform
import statistics
import threading
import time
from pathlib import Path

from common import DATA, machine

from gatedrag.chat import ChatSession
from gatedrag.config import PipelineConfig
from gatedrag.evals.followups import Conversation, load_conversations
from gatedrag.evals.metrics import exact_match, f1, normalize
from gatedrag.events import Answer, Finished, SentenceAccepted
from gatedrag.pipeline import GatedRAG
from gatedrag.scheduler import Scheduler

CONDITIONS = ("history", "written_out", "no_history")


def load_rag(batch_size: int = 8) -> GatedRAG:
    cfg = PipelineConfig.model_validate(
        {"retrieval": {"corpus": str(DATA / "musique" / "corpus.jsonl")}, "decoding": {"batch_size": batch_size}}
    )
    return GatedRAG.from_config(cfg, progress=print)


def _holds(text: str, answers: list[str]) -> bool:
    t = f" {normalize(text)} "
    return any(f" {normalize(a)} " in t for a in answers if normalize(a))


def _turn_record(c: Conversation, condition: str, question: str, answer: Answer, seconds: float) -> dict:
    return {
        "id": c.id,
        "condition": condition,
        "question": question,
        "answers": c.answers,
        "prediction": answer.answer,
        "em": exact_match(answer.answer, c.answers),
        "f1": round(f1(answer.answer, c.answers), 4),
        "retrievals": answer.counts.retrievals,
        "finish_reason": answer.finish_reason,
        "seconds": round(seconds, 2),
    }


def followups(args: argparse.Namespace) -> None:
    conversations = load_conversations(DATA / "musique" / "train_100.jsonl", limit=args.limit)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():
        done = {(r["id"], r["condition"]) for r in map(json.loads, out.read_text().splitlines()) if r}
    rag = load_rag()
    lock = threading.Lock()

    def write(record: dict) -> None:
        with lock, out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        print(record["condition"], record["id"], record["em"], record.get("condensed", ""), flush=True)

    with Scheduler(rag, max_pending=4 * len(conversations) + 8) as scheduler:

        def chat(c: Conversation) -> None:
            t0 = time.perf_counter()
            session = ChatSession(scheduler)
            first = session.send(c.first)
            second = session.send(c.follow_up)
            rec = _turn_record(c, "history", c.follow_up, second.answer, time.perf_counter() - t0)
            rec |= {
                "first": c.first,
                "first_prediction": first.answer.answer,
                "first_em": exact_match(first.answer.answer, c.first_answers),
                "condensed": second.condensed.question,
                "action": second.condensed.action,
                "recovered_model": _holds(second.condensed.question, [first.answer.answer]),
                "recovered_gold": _holds(second.condensed.question, c.first_answers),
            }
            write(rec)

        def alone(c: Conversation, condition: str) -> None:
            question = c.written_out if condition == "written_out" else c.follow_up
            t0 = time.perf_counter()
            answer = scheduler.ask(question)
            write(_turn_record(c, condition, question, answer, time.perf_counter() - t0))

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            jobs = [pool.submit(chat, c) for c in conversations if (c.id, "history") not in done]
            jobs += [
                pool.submit(alone, c, cond)
                for cond in ("written_out", "no_history")
                for c in conversations
                if (c.id, cond) not in done
            ]
            for j in concurrent.futures.as_completed(jobs):
                j.result()
    summarize(out, [c.id for c in conversations])


def summarize(path: Path, ids: list[str]) -> dict:
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    by = {(r["id"], r["condition"]): r for r in records if r["id"] in ids}
    summary: dict = {"conversations": len(ids)}
    for cond in CONDITIONS:
        rs = [by[(i, cond)] for i in ids if (i, cond) in by]
        if rs:
            summary[cond] = {
                "n": len(rs),
                "em": round(sum(r["em"] for r in rs) / len(rs), 3),
                "f1": round(sum(r["f1"] for r in rs) / len(rs), 3),
                "retrievals": round(sum(r["retrievals"] for r in rs) / len(rs), 2),
            }
    hist = [by[(i, "history")] for i in ids if (i, "history") in by]
    if hist:
        n = len(hist)
        right_first = [r for r in hist if r["first_em"]]
        summary["condense"] = {
            "rewritten": sum(r["action"] == "rewritten" for r in hist) / n,
            "holds_model_first_answer": round(sum(r["recovered_model"] for r in hist) / n, 3),
            "holds_gold_first_answer": round(sum(r["recovered_gold"] for r in hist) / n, 3),
            "first_turn_em": round(len(right_first) / n, 3),
            "second_em_when_first_right": round(sum(r["em"] for r in right_first) / max(1, len(right_first)), 3),
        }
    print(json.dumps(summary, indent=1))
    return summary


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, round(q * (len(xs) - 1)))], 2) if xs else float("nan")


def _stats(turns: list[dict], wall: float) -> dict:
    tokens = sum(t["tokens"] for t in turns)
    return {
        "turns": len(turns),
        "wall_s": round(wall, 1),
        "ttfs_p50_s": _pct([t["ttfs"] for t in turns if t["ttfs"] is not None], 0.5),
        "ttfs_p95_s": _pct([t["ttfs"] for t in turns if t["ttfs"] is not None], 0.95),
        "turn_p50_s": _pct([t["latency"] for t in turns], 0.5),
        "turn_p95_s": _pct([t["latency"] for t in turns], 0.95),
        "generated_tokens": tokens,
        "prompt_tokens": sum(t["prompt_tokens"] for t in turns),
        "tokens_per_s": round(tokens / wall, 2),
    }


def _through_scheduler(
    rag: GatedRAG, questions: list[str], sessions: int, timed
) -> tuple[list[dict], float, list[int]]:
    """The questions answered by ``sessions`` concurrent clients (each streams one turn at a time)."""
    todo = list(enumerate(questions))
    got: dict[int, dict] = {}
    lock = threading.Lock()
    with Scheduler(rag) as scheduler:

        def client() -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    i, q = todo.pop(0)
                got[i] = timed(scheduler.stream(q))

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    return [got[i] for i in range(len(questions))], wall, scheduler.occupancy


def latency(args: argparse.Namespace) -> None:
    questions = [c.first for c in load_conversations(DATA / "musique" / "train_100.jsonl", limit=args.questions)]
    rag = load_rag()
    rag.ask(questions[0])  # warm: caches and kernels
    runs: dict = {}

    def timed(stream) -> dict:
        t0, ttfs, events = time.perf_counter(), None, []
        for e in stream:
            events.append(e)
            if ttfs is None and isinstance(e, SentenceAccepted):
                ttfs = time.perf_counter() - t0
        final = next(e for e in reversed(events) if isinstance(e, Finished))
        return {
            "ttfs": ttfs,
            "latency": time.perf_counter() - t0,
            "tokens": final.counts.generated_tokens,
            "prompt_tokens": final.counts.prompt_tokens,
            "text": final.text,
        }

    t0 = time.perf_counter()
    serial = [timed(rag.stream(q)) for q in questions]
    runs["serial"] = _stats(serial, time.perf_counter() - t0)
    print("serial", runs["serial"], flush=True)
    t0 = time.perf_counter()
    batched = rag.batch(questions)  # the static batch (all decoded together, as `gatedrag eval` does)
    wall = time.perf_counter() - t0
    runs["static_batch"] = {
        "turns": len(questions),
        "wall_s": round(wall, 1),
        "generated_tokens": sum(a.counts.generated_tokens for a in batched),
        "prompt_tokens": sum(a.counts.prompt_tokens for a in batched),
        "tokens_per_s": round(sum(a.counts.generated_tokens for a in batched) / wall, 2),
        "same_as_serial": sum(a.text == b["text"] for a, b in zip(batched, serial)),
        "differ": [i for i, (a, b) in enumerate(zip(batched, serial)) if a.text != b["text"]],
    }
    print("static batch", runs["static_batch"], flush=True)
    for sessions in args.sessions:
        turns, wall, occupancy = _through_scheduler(rag, questions, sessions, timed)
        runs[f"{sessions}_sessions"] = _stats(turns, wall) | {
            "same_as_serial": sum(a["text"] == b["text"] for a, b in zip(turns, serial)),
            "differ": [i for i, (a, b) in enumerate(zip(turns, serial)) if a["text"] != b["text"]],
            "mean_rows_running": round(statistics.mean(occupancy), 2) if occupancy else 0,
        }
        print(sessions, runs[f"{sessions}_sessions"], flush=True)
    result = {
        "machine": machine() | {"processor": platform.processor()},
        "model": rag.lm.name,
        "questions": len(questions),
        "data": "MuSiQue train_100: first turns of the 2-hop conversations; corpus musique/corpus.jsonl (bm25s)",
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("followups")
    f.add_argument("--limit", type=int, default=40)
    f.add_argument("--out", default="benchmarks/results/chat/followups.jsonl")
    f.add_argument("--summary-only", action="store_true")
    lat = sub.add_parser("latency")
    lat.add_argument("--questions", type=int, default=8)
    lat.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8])
    lat.add_argument("--out", default="benchmarks/results/chat/latency.json")
    args = parser.parse_args()
    if args.command == "followups" and args.summary_only:
        ids = [c.id for c in load_conversations(DATA / "musique" / "train_100.jsonl", limit=args.limit)]
        summarize(Path(args.out), ids)
    elif args.command == "followups":
        followups(args)
    else:
        latency(args)


if __name__ == "__main__":
    main()
