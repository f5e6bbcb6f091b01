"""Sampled decoding (for consistency checks): temperature and nucleus (top-p) sampling from the
scores the model produced, the same function for every backend.

Token statistics (log-probability, entropy, alternatives) stay those of the model's own
distribution; sampling only changes which token is written.

Example:
    >>> import numpy as np
    >>> s = Sampling(temperature=1.0, top_p=0.5, seed=3)
    >>> logits = np.log(np.array([0.6, 0.3, 0.1]))
    >>> {sample_token(logits, s, np.random.default_rng(i)) for i in range(20)}  # top-p 0.5 keeps one token
    {0}
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Sampling(BaseModel):
    """Temperature (> 0) and top-p (0 to 1] of sampled decoding; ``seed`` makes it repeatable
    (each row draws from its own generator, seeded by ``seed`` and the row's position) given the
    same scores: on llama.cpp, from the same cache state (see :mod:`gatedrag.lm.llamacpp`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    temperature: float = Field(default=0.7, gt=0.0, le=10.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int = Field(default=0, ge=0)

    def generator(self, row: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, row])


def sample_token(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """Draw the next token from ``softmax(logits / temperature)`` restricted to the smallest set of
    tokens whose probability reaches ``top_p``."""
    z = np.asarray(logits, dtype=np.float64) / sampling.temperature
    z -= z.max()
    p = np.exp(z)
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    cumulative = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(cumulative, sampling.top_p) + 1)]
    q = p[keep] / p[keep].sum()
    return int(keep[rng.choice(len(keep), p=q)])


__all__ = ["Sampling", "sample_token"]
