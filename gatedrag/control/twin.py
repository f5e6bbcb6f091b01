"""Knowledge control inside gatedrag's own decode session: each controlled row has a *twin* row
(the same answer so far after the no-context prompt) in the same ``generate()`` batch, so both
branches advance in one forward pass.

:class:`TwinMixer` (a ``LogitsProcessor``) mixes every controlled row's logits with its twin's
(:func:`~gatedrag.control.knowledge.knowledge_mix`) when mixing is on, records the step's
confidence gain and conflict flag per row (read by the sentence monitor into each
:class:`~gatedrag.types.TokenStep`), and forces each twin onto the token its row chose.
:class:`TwinStop` makes a twin stop with its row. Rows without a twin are left untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from gatedrag.config import KnowledgeControlConfig
from gatedrag.control.knowledge import knowledge_mix


class TwinMixer(LogitsProcessor):
    """Rows ``mains[j]`` and ``twins[j]`` of the batch are a controlled row and its twin."""

    def __init__(self, mains: Sequence[int], twins: Sequence[int], mix: Sequence[bool], config: KnowledgeControlConfig):
        self.mains, self.twins = list(mains), list(twins)
        self.mix = torch.tensor(list(mix), dtype=torch.bool)
        self.config = config
        self.current: dict[int, dict[str, Any]] = {}

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        main = scores[self.mains]
        mixed, stats = knowledge_mix(main, scores[self.twins], self.config)
        chosen_scores = torch.where(self.mix.to(scores.device)[:, None], mixed.to(scores.dtype), main)
        out = scores.clone()
        out[self.mains] = chosen_scores
        chosen = chosen_scores.argmax(-1)
        forced = torch.full_like(scores[self.twins], torch.finfo(scores.dtype).min)
        forced.scatter_(1, chosen[:, None], 0.0)
        out[self.twins] = forced
        self.current = {
            row: {"confidence_gain": float(stats.confidence_gain[j]), "conflict": bool(stats.adjusted[j])}
            for j, row in enumerate(self.mains)
        }
        return out

    def extras(self, row: int) -> dict[str, Any]:
        """This step's CG and conflict flag of main row ``row`` (empty for uncontrolled rows)."""
        return self.current.get(row, {})


class MainRowsTap(LogitsProcessor):
    """Hands only the first ``n`` rows (the real ones) to the monitor's score tap."""

    def __init__(self, tap: Any, n: int):
        self.tap, self.n = tap, n

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.tap(input_ids[: self.n], scores[: self.n])
        return scores


class TwinStop(StoppingCriteria):
    """The monitor decides for the real rows; each twin is done when its row is."""

    def __init__(self, monitor: Any, n: int, twin_of: Sequence[int]):
        self.monitor, self.n, self.twin_of = monitor, n, list(twin_of)

    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        done = self.monitor(input_ids[: self.n], scores, **kwargs)
        return torch.cat([done, done[self.twin_of]])


__all__ = ["MainRowsTap", "TwinMixer", "TwinStop"]
