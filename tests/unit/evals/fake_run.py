"""A run_method() driven by a fake pipeline that takes a while per question (for the kill test).

Usage: python fake_run.py OUT_FILE N_QUESTIONS SECONDS_PER_BATCH
"""

import sys
import time
from pathlib import Path

from gatedrag.config import PipelineConfig
from gatedrag.evals.datasets import Example
from gatedrag.evals.runner import run_method
from gatedrag.types import Answer


class SlowFake:
    def __init__(self, delay: float):
        self.config = PipelineConfig.model_validate({"decoding": {"batch_size": 3}})
        self.delay = delay

    def batch(self, questions, passages=None):
        time.sleep(self.delay)
        return [Answer(question=q, text=f"So the answer is {q[-1]}.", answer=q[-1], confidence=0.5) for q in questions]


if __name__ == "__main__":
    out, n, delay = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    examples = [Example(id=f"q{i}", dataset="fake", question=f"question {i}", answers=[str(i)[-1]]) for i in range(n)]
    records = run_method(SlowFake(delay), examples, out, method="fake")
    print(len(records))
