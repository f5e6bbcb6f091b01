"""`gatedrag chat` in a terminal session: streamed sentences with confidence and citations, a
condensed follow-up, the commands."""

from __future__ import annotations

from helpers.scripted import ScriptedLM
from typer.testing import CliRunner

from gatedrag.cli.app import app
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage


def test_a_conversation_with_commands(monkeypatch, tmp_path):
    lm = ScriptedLM(
        [("Paris is big.", 0.95), ("So the answer is Lyon.", 0.2)],
        [("Paris is big.", 0.95), ("So the answer is Paris.", 0.9)],
        rewrite="How many people live in Paris?",
    )
    retriever = BM25Retriever.build([Passage(id="p", title="Paris", text="Paris is the capital of France.")])
    monkeypatch.setattr(
        GatedRAG, "from_config", classmethod(lambda cls, cfg=None, progress=None: GatedRAG(lm, retriever))
    )
    saved = tmp_path / "chat.json"
    lines = [
        "What is the capital of France?",
        "How many people live there?",
        "/sources",
        "/trace",
        f"/save {saved}",
        "/nope",
        "/reset",
        "/quit",
    ]
    result = CliRunner().invoke(app, ["chat"], input="\n".join(lines) + "\n")
    out = result.output
    assert result.exit_code == 0, out
    assert "So the answer is Paris." in out and "(0.90; Paris)" in out  # confidence and the cited title
    assert "→ How many people live in Paris?" in out and "Answer: Paris" in out
    assert "Paris is the capital of France." in out  # /sources
    assert saved.is_file() and "unknown command /nope" in out and "conversation forgotten" in out
