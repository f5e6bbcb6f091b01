"""CK-PLUG's per-step knowledge mix, batched (anchors §2.1), as pure tensor functions.

For each row: the with-context logits ``z_c`` and the without-context logits ``z_p`` of the same
next token. Steps:

1. plausibility head: a token survives if its log-probability reaches
   ``min(max + ln relative_top, select_top-th largest)`` in either distribution;
2. entropies H_c, H_p (nats) of both distributions over the head;
3. confidence gain ``CG = H_p - H_c`` (nats; positive = the context made the model surer);
4. conflict: adjust iff ``CG < epsilon * H_c`` (epsilon 0 = paper, 1 = released code);
5. adjusted rows get ``alpha * z_p + (1 - alpha) * (z_c - z_p)`` (manual) or the adaptive weights
   ``(2 H_c / D) z_p + (2 H_p / D) (z_c - z_p)`` with ``r = 1 + |H_c - H_p| / (H_c + H_p)``,
   ``D = H_c + r H_p``; tokens outside the head are masked. Other rows keep ``z_c``.

Logits are taken as log-probabilities (a per-row constant shift, which no softmax or argmax sees).

Example:
    >>> import torch
    >>> from gatedrag.config import KnowledgeControlConfig
    >>> from gatedrag.control.knowledge import knowledge_mix
    >>> z_c = torch.tensor([[2.0, 1.9, -5.0]])   # with context: unsure between tokens 0 and 1
    >>> z_p = torch.tensor([[0.0, 6.0, -5.0]])   # memory: sure of token 1
    >>> scores, stats = knowledge_mix(z_c, z_p, KnowledgeControlConfig(alpha=1.0))
    >>> bool(stats.adjusted[0]), int(scores.argmax(-1)[0])   # conflict: alpha=1 follows memory
    (True, 1)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gatedrag.config import KnowledgeControlConfig

_EPS = 1e-9


@dataclass(frozen=True)
class MixStats:
    """Per-row quantities of one step (tensors of shape ``[batch]``; entropies in nats)."""

    h_context: torch.Tensor
    h_parametric: torch.Tensor
    confidence_gain: torch.Tensor
    adjusted: torch.Tensor
    head_size: torch.Tensor


def plausibility_head(lp_c: torch.Tensor, lp_p: torch.Tensor, select_top: int, relative_top: float) -> torch.Tensor:
    """Boolean ``[batch, vocab]``: tokens plausible under either distribution (log-probs in)."""

    def keep(lp: torch.Tensor) -> torch.Tensor:
        k = min(select_top, lp.shape[-1])
        kth = lp.topk(k, dim=-1).values[..., -1:]
        cutoff = torch.minimum(lp.max(dim=-1, keepdim=True).values + math.log(relative_top), kth)
        return lp >= cutoff

    return keep(lp_c) | keep(lp_p)


def _entropy(lp: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
    masked = lp.masked_fill(~head, float("-inf"))
    p = torch.softmax(masked, dim=-1)
    return -(p * torch.log(p + _EPS)).sum(dim=-1)


def knowledge_mix(
    z_c: torch.Tensor, z_p: torch.Tensor, config: KnowledgeControlConfig
) -> tuple[torch.Tensor, MixStats]:
    """The scores to decode from (``[batch, vocab]``) and the step's statistics."""
    if z_c.shape != z_p.shape or z_c.dim() != 2:
        raise ValueError(f"z_c and z_p must both be [batch, vocab], got {tuple(z_c.shape)} and {tuple(z_p.shape)}")
    lp_c = torch.log_softmax(z_c.float(), dim=-1)
    lp_p = torch.log_softmax(z_p.float(), dim=-1)
    head = plausibility_head(lp_c, lp_p, config.select_top, config.relative_top)
    h_c, h_p = _entropy(lp_c, head), _entropy(lp_p, head)
    gain = h_p - h_c
    adjusted = gain < config.epsilon * h_c
    delta = lp_c - lp_p
    if config.adaptive:
        total = (h_c + h_p).clamp_min(_EPS)
        r = 1.0 + (h_c - h_p).abs() / total
        d = (h_c + r * h_p).clamp_min(_EPS)
        w_p, w_d = (2 * h_c / d)[:, None], (2 * h_p / d)[:, None]
    else:
        w_p = torch.full_like(h_c, config.alpha)[:, None]
        w_d = 1.0 - w_p
    mixed = (w_p * lp_p + w_d * delta).masked_fill(~head, torch.finfo(lp_c.dtype).min)
    scores = torch.where(adjusted[:, None], mixed, lp_c)
    stats = MixStats(h_context=h_c, h_parametric=h_p, confidence_gain=gain, adjusted=adjusted, head_size=head.sum(-1))
    return scores.to(z_c.dtype), stats


__all__ = ["MixStats", "knowledge_mix", "plausibility_head"]
