"""A tiny random language model for exercising the pipeline around a model (tests, golden traces,
the reliability campaign): a seeded 2-layer Qwen2 on a character tokenizer, or on any tokenizer
given (the reliability runs use the default model's, so every input reaches a real tokenizer).

Example:
    >>> lm = tiny_qwen2()
    >>> lm.name, lm.count_tokens("abc")
    ('tiny-qwen2', 3)
"""

from __future__ import annotations

from typing import Any


def char_tokenizer() -> Any:
    """One token per printable ASCII character, plus newline and ``<eos>`` (ids 95, 96)."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {chr(i): i - 32 for i in range(32, 127)} | {"\n": 95, "<eos>": 96}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tk.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")


def tiny_qwen2(
    tokenizer: Any = None,
    *,
    name: str = "tiny-qwen2",
    max_positions: int = 4096,
    tie_embeddings: bool = False,
    top_k: int = 3,
    seed: int = 0,
) -> Any:
    """A randomly initialised 2-layer Qwen2 (``seed``) behind the HF backend, on ``tokenizer``
    (default: :func:`char_tokenizer`)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from gatedrag.lm.hf import HFLanguageModel

    tokenizer = tokenizer if tokenizer is not None else char_tokenizer()
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tie_embeddings,
    )
    return HFLanguageModel(Qwen2ForCausalLM(config), tokenizer, name=name, top_k=top_k)


__all__ = ["char_tokenizer", "tiny_qwen2"]
