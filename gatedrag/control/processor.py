"""CK-PLUG as a transformers ``LogitsProcessor``, usable with plain ``model.generate()``.

``model.generate()`` runs the with-context rows; the processor keeps the without-context
(parametric) rows and their KV cache itself and advances them by the token each row just emitted,
as transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor`` does for its unconditional
branch. Several questions at once: the parametric prompts are left-padded into one batch. Every
step's confidence gain and whether it was adjusted are kept in :attr:`history`.

(:func:`gatedrag.control.joint.generate_with_control` advances both branches in *one* forward pass
instead; this class is for users of ``generate()``.)

Example::

    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList
    from gatedrag.config import KnowledgeControlConfig
    from gatedrag.control.processor import KnowledgeRelianceLogitsProcessor

    tok.padding_side = "left"
    ctx = tok(["Background: ...\\nQ: ...\\nA:"], return_tensors="pt", padding=True)
    par = tok(["Q: ...\\nA:"], return_tensors="pt", padding=True)
    ck = KnowledgeRelianceLogitsProcessor(model, par.input_ids, par.attention_mask, KnowledgeControlConfig(alpha=0.8))
    out = model.generate(**ctx, logits_processor=LogitsProcessorList([ck]), do_sample=False, max_new_tokens=32)
    ck.history[0].adjusted       # which rows were adjusted at the first step
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import LogitsProcessor

from gatedrag.config import KnowledgeControlConfig
from gatedrag.control.knowledge import MixStats, knowledge_mix
from gatedrag.errors import InputError


class KnowledgeRelianceLogitsProcessor(LogitsProcessor):
    """Re-mixes context and parametric logits where they conflict (see :mod:`.knowledge`).

    ``parametric_ids`` / ``parametric_mask``: the prompts without passages, one row per generated
    row, left-padded. ``config``: alpha / adaptive / epsilon / select_top / relative_top.
    """

    supports_continuous_batching = False

    def __init__(
        self,
        model: Any,
        parametric_ids: torch.Tensor,
        parametric_mask: torch.Tensor | None = None,
        config: KnowledgeControlConfig | None = None,
    ):
        if not isinstance(parametric_ids, torch.Tensor) or parametric_ids.dim() != 2 or parametric_ids.shape[1] == 0:
            raise InputError("parametric_ids must be a non-empty [batch, length] tensor of token ids")
        if parametric_mask is not None and parametric_mask.shape != parametric_ids.shape:
            raise InputError(
                f"parametric_mask {tuple(parametric_mask.shape)} must match parametric_ids {tuple(parametric_ids.shape)}"
            )
        if parametric_mask is not None and bool((parametric_mask[:, -1] == 0).any()):
            raise InputError("parametric prompts must be left-padded (the last column of the mask must be 1)")
        self.model = model
        self.config = config or KnowledgeControlConfig()
        self.ids = parametric_ids
        self.mask = parametric_mask if parametric_mask is not None else torch.ones_like(parametric_ids)
        self.history: list[MixStats] = []
        self._past: Any = None
        self._seen = 0  # length of the context rows at the last call

    def reset(self) -> None:
        """Forget the parametric cache and history (to reuse the processor for another generate)."""
        self._past, self._seen, self.history = None, 0, []

    @torch.no_grad()
    def _parametric_logits(self, input_ids: torch.Tensor) -> torch.Tensor:
        device = input_ids.device
        if self._past is None:
            ids, mask = self.ids.to(device), self.mask.to(device)
            if ids.shape[0] != input_ids.shape[0]:
                raise InputError(
                    f"{ids.shape[0]} parametric prompts for {input_ids.shape[0]} generated rows: give one per row"
                )
            self.mask = mask
            positions = (mask.cumsum(-1) - 1).clamp_min(0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        else:
            new = input_ids[:, self._seen :]
            self.mask = torch.cat([self.mask, torch.ones_like(new)], dim=-1)
            start = self.mask.sum(-1, keepdim=True) - new.shape[1]
            positions = start + torch.arange(new.shape[1], device=device)[None, :]
            out = self.model(
                input_ids=new,
                attention_mask=self.mask,
                position_ids=positions,
                past_key_values=self._past,
                use_cache=True,
            )
        self._past = out.past_key_values
        self._seen = input_ids.shape[1]
        return out.logits[:, -1, :]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self._past is not None and input_ids.shape[1] < self._seen:
            self.reset()  # a new generate() call
        z_p = self._parametric_logits(input_ids).to(scores.dtype)
        mixed, stats = knowledge_mix(scores, z_p[:, : scores.shape[-1]], self.config)
        self.history.append(stats)
        return mixed


__all__ = ["KnowledgeRelianceLogitsProcessor"]
