"""Greedy decoding under CK-PLUG control with both branches in **one** forward pass per step.

The with-context prompts and the without-context prompts of B questions are prefilled (each branch
padded only among its own rows), their caches merged, left-padded, into one batch of 2B rows
(positions from each row's own mask, so padding shifts nothing); each decoding step runs the model
once on that batch, mixes row i's logits with row B+i's (:func:`knowledge_mix`) and
appends the chosen token to both rows. This is the batched form of CK-PLUG's two-cache loop (its
released code decodes one question with two sequential forward passes).

Example::

    from gatedrag.control.joint import generate_with_control
    out = generate_with_control(model, tokenizer, ["Background: ...\\nQ: ...\\nA:"], ["Q: ...\\nA:"],
                                KnowledgeControlConfig(adaptive=True), max_new_tokens=32)
    out.texts[0], out.adjusted_fraction[0], out.mean_confidence_gain[0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gatedrag.config import KnowledgeControlConfig
from gatedrag.control.knowledge import knowledge_mix
from gatedrag.errors import InputError


@dataclass
class ControlledOutput:
    """What :func:`generate_with_control` produced, per question."""

    token_ids: list[list[int]]
    texts: list[str]
    confidence_gain: list[list[float]] = field(default_factory=list)
    """Per generated token, CG = H_p - H_c in nats (positive: the context made the model surer)."""
    adjusted: list[list[bool]] = field(default_factory=list)

    @property
    def adjusted_fraction(self) -> list[float]:
        return [sum(a) / len(a) if a else 0.0 for a in self.adjusted]

    @property
    def mean_confidence_gain(self) -> list[float]:
        return [sum(g) / len(g) if g else 0.0 for g in self.confidence_gain]


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids, mask


def _group_prefill(model: Any, rows: Sequence[Sequence[int]], pad: int, device: Any) -> tuple[Any, Any, Any]:
    ids, mask = _left_pad(rows, pad)
    ids, mask = ids.to(device), mask.to(device)
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    return out.past_key_values, mask, out.logits[:, -1, :]


def _prefill(model: Any, context: Sequence[Sequence[int]], parametric: Sequence[Sequence[int]], pad: int, device: Any):
    """Prefill each branch with its own padding (short no-context prompts are not padded to the
    passages' length), then merge both caches, left-padded to one width, into the 2B-row cache the
    joint decoding steps run on."""
    import torch.nn.functional as F
    from transformers import DynamicCache

    groups = [_group_prefill(model, rows, pad, device) for rows in (context, parametric)]
    width = max(g[1].shape[1] for g in groups)
    merged = []
    for layer in range(len(groups[0][0].layers)):
        ks, vs = [], []
        for cache, mask, _ in groups:
            k, v = cache.layers[layer].keys, cache.layers[layer].values
            ks.append(F.pad(k, (0, 0, width - mask.shape[1], 0)))
            vs.append(F.pad(v, (0, 0, width - mask.shape[1], 0)))
        merged.append((torch.cat(ks), torch.cat(vs)))
    mask = torch.cat([F.pad(m, (width - m.shape[1], 0)) for _, m, _ in groups])
    logits = torch.cat([g[2] for g in groups])
    return DynamicCache(ddp_cache_data=merged), mask, logits


@torch.no_grad()
def generate_with_control(
    model: Any,
    tokenizer: Any,
    context_prompts: Sequence[str],
    parametric_prompts: Sequence[str],
    config: KnowledgeControlConfig | None = None,
    *,
    max_new_tokens: int = 64,
    eos_ids: Sequence[int] | None = None,
    control: bool = True,
) -> ControlledOutput:
    """Greedy answers to ``context_prompts`` under knowledge control against ``parametric_prompts``
    (same length lists). ``control=False`` decodes the context rows plainly (the parametric rows are
    still run, so the cost of control can be measured against the same work)."""
    if isinstance(context_prompts, str) or isinstance(parametric_prompts, str):
        raise InputError("give lists of prompts, one per question")
    if len(context_prompts) != len(parametric_prompts) or not context_prompts:
        raise InputError("context_prompts and parametric_prompts must be non-empty lists of the same length")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    config = config or KnowledgeControlConfig()
    b = len(context_prompts)
    encoded = [tokenizer.encode(p, add_special_tokens=False) for p in [*context_prompts, *parametric_prompts]]
    if any(not e for e in encoded):
        raise InputError("a prompt encodes to no tokens")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    stop = set(
        eos_ids if eos_ids is not None else [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    )
    device = next(model.parameters()).device
    past, mask, logits = _prefill(model, encoded[:b], encoded[b:], pad, device)
    last_pos = mask.sum(-1, keepdim=True) - 1
    tokens: list[list[int]] = [[] for _ in range(b)]
    gains: list[list[float]] = [[] for _ in range(b)]
    adjusted: list[list[bool]] = [[] for _ in range(b)]
    done = torch.zeros(b, dtype=torch.bool, device=device)
    for _ in range(max_new_tokens):
        z_c, z_p = logits[:b], logits[b:]
        if control:
            scores, stats = knowledge_mix(z_c, z_p, config)
        else:
            scores, stats = z_c, knowledge_mix(z_c, z_p, config)[1]
        nxt = scores.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, pad), nxt)
        for i in range(b):
            if not done[i]:
                tokens[i].append(int(nxt[i]))
                gains[i].append(float(stats.confidence_gain[i]))
                adjusted[i].append(bool(stats.adjusted[i]) and control)
        done |= torch.tensor([int(t) in stop for t in nxt.tolist()], device=device)
        if bool(done.all()):
            break
        step = torch.cat([nxt, nxt])[:, None]
        mask = torch.cat([mask, torch.ones_like(step)], dim=-1)
        last_pos = last_pos + 1
        out = model(input_ids=step, attention_mask=mask, position_ids=last_pos, past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :]
    texts = [tokenizer.decode([t for t in row if t not in stop], skip_special_tokens=True) for row in tokens]
    return ControlledOutput(token_ids=tokens, texts=texts, confidence_gain=gains, adjusted=adjusted)


__all__ = ["ControlledOutput", "generate_with_control"]
