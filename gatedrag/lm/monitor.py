"""The decoding-time monitor: per-token distribution statistics and sentence boundaries.

:class:`SentenceMonitor` is a transformers ``StoppingCriteria``; its :class:`ScoreTap`, passed as
the last logits processor, keeps a reference to each step's final scores (unchanged). The monitor
is then handed the token chosen from those scores, so it reads the distribution the
model already produced: no extra forward pass, no copy of the logits. For each row it records
the chosen token's log-probability, the entropy of the full next-token distribution and the top-k
alternatives, cuts the stream into sentences, calls the sentence hook, and stops the row when the
hook says so, at EOS, at a stop string or at the row's token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import LogitsProcessor, StoppingCriteria

from gatedrag.lm.base import SentenceHook
from gatedrag.lm.sentences import find_sentence_end, first_stop
from gatedrag.types import FinishReason, Sentence, TokenAlternative, TokenStep

_TAIL = 32  # characters of already-emitted text kept to catch stop strings across a boundary


@dataclass
class RowStream:
    """The part of a row's generated text that is not yet a finished sentence."""

    steps: list[TokenStep] = field(default_factory=list)
    tail: str = ""

    def ids(self) -> list[int]:
        return [s.token_id for s in self.steps]


@dataclass
class _RowState:
    key: Hashable
    stream: RowStream
    budget: int
    ends: list[int] = field(default_factory=list)  # end character offset of each pending token
    generated: int = 0
    done: bool = False
    finish: FinishReason | None = None
    sentences: list[Sentence] = field(default_factory=list)


class ScoreTap(LogitsProcessor):
    """A pass-through logits processor that keeps a reference to the current step's scores."""

    def __init__(self) -> None:
        self.scores: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.scores = scores
        return scores


class SentenceMonitor(StoppingCriteria):
    """Records token statistics, emits sentences to a hook, and stops rows (see module doc)."""

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
        self.on_sentence = on_sentence
        self.eos_ids = eos_ids
        self.max_sentence_tokens = max_sentence_tokens
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.regroup = regroup
        self.top_k = top_k
        self.split_sentences = split_sentences
        self.rows = [_RowState(k, st, int(budgets[k])) for k, st in zip(keys, streams)]
        for row in self.rows:
            row.ends = self._ends(row.stream.ids())
        self._acting = 0
        self.tap = ScoreTap()

    # -- text helpers -------------------------------------------------------------------------
    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _ends(self, ids: list[int]) -> list[int]:
        return [len(self._decode(ids[: i + 1])) for i in range(len(ids))]

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
                self._advance(self.rows[i], int(chosen[j]), float(chosen_lp[j]), float(entropy[j]), alts, extra)
        return torch.tensor([r.done for r in self.rows], dtype=torch.bool, device=input_ids.device)

    # -- per-row logic --------------------------------------------------------------------------
    def _advance(
        self,
        row: _RowState,
        token: int,
        logprob: float,
        entropy: float,
        alts: list[TokenAlternative],
        extra: dict[str, Any] | None = None,
    ) -> None:
        row.generated += 1
        if token in self.eos_ids:
            self._finish(row, "eos")
            return
        st = row.stream
        prev_end = row.ends[-1] if row.ends else 0
        st.steps.append(
            TokenStep.model_construct(
                token_id=token,
                text="",
                logprob=logprob,
                entropy=entropy,
                top=alts,
                confidence_gain=(extra or {}).get("confidence_gain"),
                conflict=(extra or {}).get("conflict"),
            )
        )
        text = self._decode(st.ids())
        row.ends.append(len(text))
        st.steps[-1].text = text[prev_end:]

        if self.stop_strings:
            window = st.tail + text
            hit = first_stop(window, self.stop_strings, max(0, len(st.tail) + prev_end - 16))
            if hit is not None:
                self._emit(row, text, max(0, hit - len(st.tail)), final=True)
                self._finish(row, "stop", flush=False)
                return
        while self.split_sentences and not row.done and (end := find_sentence_end(text)) is not None:
            self._emit(row, text, end, final=False)
            text = self._decode(st.ids())
        if row.done:
            return
        if len(st.steps) >= self.max_sentence_tokens:
            self._emit(row, text, len(text), final=False)
        if not row.done and row.generated >= row.budget:
            self._finish(row, "budget")

    def _emit(self, row: _RowState, text: str, end: int, *, final: bool) -> None:
        """Turn the pending tokens that start before character ``end`` into a sentence."""
        st = row.stream
        starts = [0, *row.ends[:-1]]
        n = sum(1 for s in starts if s < end) if end > 0 else 0
        if final:
            n = n if end < len(text) else len(st.steps)
        taken, st.steps = st.steps[:n], st.steps[n:]
        consumed = row.ends[n - 1] if n else 0
        row.ends = self._ends(st.ids())  # re-derived: decode(rest) need not equal text[consumed:]
        sentence_text = (text[:end] if final else text[:consumed]).strip()
        st.tail = (st.tail + text[:consumed])[-_TAIL:]
        if not sentence_text:
            return
        sentence = Sentence(text=sentence_text, tokens=taken, final=final)
        row.sentences.append(sentence)
        verdict = self.on_sentence(row.key, sentence)
        if final or row.done:
            return
        if verdict == "act":
            self._acting += 1
            self._finish(row, "act", flush=False)
        elif verdict == "done":
            self._finish(row, "done", flush=False)
        elif self.regroup and self._acting:
            self._finish(row, "paused", flush=False)

    def _finish(self, row: _RowState, reason: FinishReason, *, flush: bool = True) -> None:
        if flush and row.stream.steps:
            text = self._decode(row.stream.ids())
            self._emit(row, text, len(text), final=True)
        row.done = True
        row.finish = reason


__all__ = ["RowStream", "ScoreTap", "SentenceMonitor"]
