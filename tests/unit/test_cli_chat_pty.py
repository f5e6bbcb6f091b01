"""`gatedrag chat` driven through a pseudo-terminal, as a person types into it: the prompt, a
streamed answer, a condensed follow-up, a message too long, the commands, end of input."""

from __future__ import annotations

import contextlib
import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

DRIVER = """
import sys
from helpers.scripted import ScriptedLM
from gatedrag.cli.app import app
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage

lm = ScriptedLM(
    [("Paris is big.", 0.95), ("So the answer is Lyon.", 0.2)],
    [("Paris is big.", 0.95), ("So the answer is Paris.", 0.9)],
    rewrite="How many people live in Paris?",
)
retriever = BM25Retriever.build([Passage(id="p", title="Paris", text="Paris is the capital of France.")])
GatedRAG.from_config = classmethod(lambda cls, cfg=None, progress=None: GatedRAG(lm, retriever))
sys.argv = ["gatedrag", "chat"]
app()
"""


class Terminal:
    """A child process on a pseudo-terminal: what it printed so far, and typing into it."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 60.0) -> str:
        """Wait until ``text`` shows on the screen (styles aside); everything shown so far, styled."""
        deadline = time.monotonic() + timeout
        while text not in ANSI.sub("", self.seen.decode(errors="replace")):
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not select.select([self.master], [], [], 0)[0]):
                raise AssertionError(
                    f"never printed {text!r}; the terminal shows:\n{self.seen.decode(errors='replace')}"
                )
            if select.select([self.master], [], [], min(left, 0.2))[0]:
                with contextlib.suppress(OSError):  # the child closed the terminal
                    self.seen += os.read(self.master, 65536)
        return self.seen.decode(errors="replace")

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> int:
        try:
            return self.proc.wait(timeout=30)
        finally:
            os.close(self.master)


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_a_person_at_a_terminal(tmp_path):
    tests = Path(__file__).resolve().parents[1]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")]), "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    term = Terminal([sys.executable, "-c", DRIVER], env)
    try:
        term.expect("you>")
        term.type("What is the capital of France?")
        out = term.expect("Answer:")
        assert "\x1b[" in out  # a real terminal: styled (shaded by confidence)
        term.expect("you>")
        term.type("How many people live there?")
        term.expect("How many people live in Paris?")  # the condense step, shown
        term.expect("Answer:")
        term.type("x" * 4090)  # (a terminal line holds at most 4095 characters)
        term.expect("at most 4000 are accepted")  # refused, and the conversation goes on
        term.type("/sources")
        term.expect("Paris is the capital of France.")
        saved = tmp_path / "chat.json"
        term.type(f"/save {saved}")
        term.expect("saved to")
        term.type("/reset")
        term.expect("conversation forgotten")
        os.write(term.master, b"\x04")  # Ctrl-D: end of input
        assert term.close() == 0
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert saved.is_file() and "How many people live in Paris?" in saved.read_text()
