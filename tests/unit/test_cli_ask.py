"""``gatedrag ask`` with a tiny model: the JSON output holds the events and the steps derived from them."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from gatedrag.cli.app import app
from gatedrag.config import DecodingConfig, GateConfig, PipelineConfig, TokenRAGRule
from gatedrag.events import Answer
from gatedrag.pipeline import GatedRAG


def test_ask_json_has_events_and_steps(tiny_lm, monkeypatch):
    cfg = PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.5)]), decoding=DecodingConfig(max_answer_tokens=24)
    )
    rag = GatedRAG(tiny_lm, None, cfg)
    monkeypatch.setattr(GatedRAG, "from_config", classmethod(lambda cls, config=None, progress=None: rag))
    result = CliRunner().invoke(app, ["ask", "Who wrote Hamlet?", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    steps = data.pop("steps")
    answer = Answer.model_validate(data)
    assert answer.events[-1].type == "finished" and answer.text == data["text"]
    assert steps == [s.model_dump(mode="json") for s in answer.steps] and steps[0]["kind"] == "sentence"
