"""The decoding-time monitor: per-token distribution statistics read from the logits the model
already produced, handed to a :class:`~gatedrag.lm.cutter.SentenceCutter`.

:class:`SentenceMonitor` is a transformers ``StoppingCriteria``; its :class:`ScoreTap`, passed as
the last logits processor, keeps a reference to each step's final scores (unchanged). The monitor
is then handed the token chosen from those scores, so it reads the distribution the
model already produced: no extra forward pass, no copy of the logits. For each row it computes
the chosen token's log-probability, the entropy of the full next-token distribution and the top-k
alternatives, and pushes them to the cutter, which cuts sentences, calls the hook and stops rows.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from gatedrag.lm.base import SentenceHook
from gatedrag.lm.cutter import RowState, RowStream, SentenceCutter
from gatedrag.types import TokenAlternative


class ScoreTap(LogitsProcessor):
    """A pass-through logits processor that keeps a reference to the current step's scores."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores = scores
        return scores


class SentenceMonitor(StoppingCriteria):
    """Reads token statistics from the scores and drives a :class:`SentenceCutter` (see module doc)."""

    def __init__(
        self,
        tokenizer: Any,
        keys: Sequence[Hashable],
        streams: Sequence[RowStream],
        *,
        on_sentence: SentenceHook,
        budgets: Mapping[Hashable, int],
        eos_ids: set[int],
        max_sentence_tokens: int = 64,
        stop_strings: Sequence[str] = (),
        regroup: bool = True,
        top_k: int = 5,
        split_sentences: bool = True,
        extras: Callable[[int], dict[str, Any]] | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.extras = extras
        self.top_k = top_k
        self.cutter = SentenceCutter(
            lambda ids: tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False),
            keys,
            streams,
            on_sentence=on_sentence,
            budgets=budgets,
            eos_ids=eos_ids,
            max_sentence_tokens=max_sentence_tokens,
            stop_strings=stop_strings,
            regroup=regroup,
            split_sentences=split_sentences,
        )
        self.tap = ScoreTap()

    @property
    def rows(self) -> list[RowState]:
        return self.cutter.rows

    # -- the StoppingCriteria contract ----------------------------------------------------------
    def __call__(self, input_ids: torch.LongTensor, scores: Any = None, **kwargs: Any) -> torch.BoolTensor:
        scores = self.tap.scores
        if scores is None:
            raise RuntimeError("pass SentenceMonitor.tap in logits_processor (last) as well as the monitor itself")
        active = [i for i, r in enumerate(self.rows) if not r.done]
        if active:
            idx = torch.tensor(active)
            logp = torch.log_softmax(scores[idx].float(), dim=-1)
            chosen = input_ids[idx, -1]
            chosen_lp = logp.gather(1, chosen[:, None])[:, 0].clamp(max=0.0)
            entropy = torch.special.entr(logp.exp()).sum(-1).clamp(min=0.0)
            k = min(self.top_k, logp.shape[-1])
            top_lp, top_id = logp.topk(k, dim=-1) if k else (logp[:, :0], chosen[:, None][:, :0])
            top_texts = self.tokenizer.batch_decode(top_id.reshape(-1, 1).tolist()) if k else []
            for j, i in enumerate(active):
                alts = [
                    TokenAlternative.model_construct(
                        token_id=int(top_id[j, a]), text=top_texts[j * k + a], logprob=min(float(top_lp[j, a]), 0.0)
                    )
                    for a in range(k)
                ]
                extra = self.extras(i) if self.extras is not None else {}
                self.cutter.push(
                    i,
                    int(chosen[j]),
                    logprob=float(chosen_lp[j]),
                    entropy=float(entropy[j]),
                    top=alts,
                    confidence_gain=extra.get("confidence_gain"),
                    conflict=extra.get("conflict"),
                )
        return torch.tensor([r.done for r in self.rows], dtype=torch.bool, device=input_ids.device)


__all__ = ["RowStream", "ScoreTap", "SentenceMonitor"]
