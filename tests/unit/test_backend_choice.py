"""Which backend a config runs on (model.backend: auto), decided before anything is loaded."""

from __future__ import annotations

import pytest

from gatedrag import factory
from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError


def _cfg(**model):
    return PipelineConfig.model_validate({"model": model} if model else {})


@pytest.fixture
def cpu(monkeypatch):
    def set_(*, bf16: bool, installed: bool):
        monkeypatch.setattr("gatedrag.lm.cpu.native_bf16", lambda: bf16)
        monkeypatch.setattr(factory, "_llamacpp_installed", lambda: installed)

    return set_


def test_auto_picks_llamacpp_only_without_native_bf16_and_where_installed(cpu):
    assert _cfg().model.backend == "auto"
    cpu(bf16=False, installed=True)
    choice = factory.resolve_backend(_cfg())
    assert choice.backend == "llamacpp" and "bf16" in choice.reason
    assert factory.with_backend(_cfg(), choice).model.backend == "llamacpp"
    cpu(bf16=True, installed=True)
    assert factory.resolve_backend(_cfg()).backend == "hf"
    cpu(bf16=False, installed=False)
    choice = factory.resolve_backend(_cfg())
    assert choice.backend == "hf" and "gatedrag[llamacpp]" in choice.reason


def test_auto_keeps_transformers_for_what_llamacpp_cannot_serve(cpu, tmp_path):
    cpu(bf16=False, installed=True)
    for rules in ([{"signal": "rind"}], [{"signal": "confidence_gain"}]):
        cfg = PipelineConfig.model_validate({"gate": {"rules": rules}})
        choice = factory.resolve_backend(cfg)
        assert choice.backend == "hf" and "cannot serve" in choice.reason
    always = PipelineConfig.model_validate({"policy": {"control_mode": "always"}})
    assert factory.resolve_backend(always).backend == "hf"  # knowledge control needs twins
    traced = PipelineConfig.model_validate({"gate": {"rules": [{"signal": "rind", "act": False}]}})
    assert factory.resolve_backend(traced).backend == "llamacpp"  # traced only: its trace says so
    assert factory.resolve_backend(_cfg(name=str(tmp_path))).backend == "hf"  # a transformers directory
    assert factory.resolve_backend(_cfg(device="cuda")).backend == "hf"


def test_an_explicit_backend_that_cannot_serve_the_signals_is_refused():
    rind = {"gate": {"rules": [{"signal": "rind"}]}}
    for backend in ("llamacpp", "topk"):
        cfg = PipelineConfig.model_validate({"model": {"backend": backend, "top_k": 5}, **rind})
        with pytest.raises(
            ConfigError, match=rf"model.backend {backend} cannot serve attention.*use model.backend: hf"
        ):
            factory.resolve_backend(cfg)
    hf = PipelineConfig.model_validate({"model": {"backend": "hf"}, **rind})
    assert factory.resolve_backend(hf).backend == "hf"
    with pytest.raises(ConfigError, match="GGUF"):
        factory.resolve_backend(_cfg(backend="llamacpp", name="/some/model/dir"))


def test_declared_capabilities_name_what_is_missing():
    caps = factory.BACKEND_CAPABILITIES
    assert caps["hf"].missing(frozenset({"attention", "twin", "corpus"})) == []
    assert caps["llamacpp"].missing(frozenset({"attention", "twin", "context"})) == ["attention", "twin"]


def test_the_pipeline_refuses_a_model_without_what_acting_signals_need(tiny_lm):
    from gatedrag.lm.topk import TopKLanguageModel
    from gatedrag.pipeline import GatedRAG

    topk = TopKLanguageModel(tiny_lm, k=3)
    cfg = PipelineConfig.model_validate({"gate": {"rules": [{"signal": "confidence_gain"}]}})
    with pytest.raises(ConfigError, match=r"twin.*confidence_gain"):
        GatedRAG(topk, None, cfg)
    GatedRAG(tiny_lm, None, cfg)  # transformers decodes twins


def test_the_eval_fingerprint_keeps_llamacpp_settings_only_for_that_backend():
    from gatedrag.evals.runner import fingerprint

    def fp(**model):
        return fingerprint(_cfg(**model), dataset="d", method="m", corpus_sha256="x", model="m")["config"]["model"]

    assert "llamacpp" not in fp(backend="hf")
    kept = fp(backend="llamacpp", llamacpp={"cells": 512, "batch_rows": False})
    assert kept["llamacpp"] == {"batch_rows": False, "n_batch": 128}  # cache sizes do not change answers


def test_the_eval_fingerprint_records_the_dtype_auto_resolves_to(monkeypatch):
    """A run started where bf16 is native and resumed where it is not (float32) is refused."""
    import torch

    from gatedrag.evals.runner import fingerprint

    def dtype(**model):
        fp = fingerprint(_cfg(**model), dataset="d", method="m", corpus_sha256="x", model="m")
        return fp["config"]["model"]["dtype"]

    for native, expected in ((True, "bfloat16"), (False, "float32")):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert dtype(backend="hf") == expected and dtype(backend="hf", dtype="float32") == "float32"
    assert dtype(backend="llamacpp") == "auto"  # the GGUF's own quantization: no dtype chosen
