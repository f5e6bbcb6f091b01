"""Security: servers say when they are exposed, and an API key planted in the config never appears in
an answer, a trace, an error, a log line, a repr or a config dump."""

from __future__ import annotations

import logging
import socket

import pytest

from gatedrag.cli.common import warn_if_exposed
from gatedrag.config import GateConfig, ModelConfig, OpenAIConfig, PipelineConfig, TokenRAGRule
from gatedrag.lm.openai_compat import load_openai_model
from gatedrag.pipeline import GatedRAG

KEY = "sk-planted-4f1c9e7a2b6d8e0f"


def test_a_server_bound_beyond_loopback_warns(capsys):
    warn_if_exposed("127.0.0.1", "gatedrag serve")
    assert capsys.readouterr().err == ""
    warn_if_exposed("0.0.0.0", "gatedrag serve")
    assert "bound to 0.0.0.0" in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


@pytest.mark.enable_socket
def test_a_planted_api_key_appears_nowhere(caplog):
    caplog.set_level(logging.DEBUG)
    settings = OpenAIConfig(base_url=f"http://127.0.0.1:{_closed_port()}/v1", api_key=KEY, timeout_s=1.0, max_retries=1)
    config = PipelineConfig(
        model=ModelConfig(name="m", backend="openai", top_k=5, openai=settings),
        gate=GateConfig(rules=[TokenRAGRule()]),
    )
    lm = load_openai_model(config.model)
    answer = GatedRAG(lm, None, config).ask("Who wrote Hamlet?")
    assert answer.degraded  # the server is unreachable: the answer says so
    outputs = {
        "answer": answer.model_dump_json(),
        "errors": " ".join(s.error or "" for s in answer.steps),
        "logs": "\n".join(r.getMessage() + repr(r.args) for r in caplog.records),
        "repr": repr(lm) + repr(config) + str(config),
        "config dump": config.model_dump_json() + str(config.model_dump(mode="json")),
    }
    leaked = [where for where, text in outputs.items() if KEY in text or KEY[3:] in text]
    assert not leaked, f"the planted key appears in: {leaked}"


def test_no_index_or_model_file_is_read_with_pickle(tmp_path, monkeypatch, tiny_lm):
    import pickle

    import numpy as np
    import torch

    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.retrieval.corpus import demo_corpus_path, load_corpus

    def refuse(*args, **kwargs):
        raise AssertionError("pickle was used to read a file")

    for module, name in [(pickle, "load"), (pickle, "loads"), (torch, "load")]:
        monkeypatch.setattr(module, name, refuse)
    real_np_load = np.load
    monkeypatch.setattr(np, "load", lambda *a, **k: real_np_load(*a, **{**k, "allow_pickle": False}))
    BM25Retriever.build(load_corpus(demo_corpus_path())).save(tmp_path / "bm25")
    retriever = BM25Retriever.load(tmp_path / "bm25")
    config = PipelineConfig.model_validate({"decoding": {"max_answer_tokens": 16}})
    assert GatedRAG(tiny_lm, retriever, config).ask("Who directed Ed Wood?").text is not None
