"""Sentence cutting for any backend: token steps in, sentences to the hook, rows stopped.

:class:`SentenceCutter` holds one :class:`RowState` per row being decoded. A backend pushes each
generated token (its id and the statistics of the distribution it was drawn from); the cutter
fills in the token's text (from ``decode``, so multi-byte characters come out whole), cuts the
stream into sentences (:func:`~gatedrag.lm.sentences.find_sentence_end`) or fixed-length chunks,
hands each to the sentence hook and stops a row when the hook says so, at an end-of-sequence
token, at a stop string or at the row's token budget. Nothing here needs torch: the transformers
backend drives it from a ``StoppingCriteria`` (:mod:`gatedrag.lm.monitor`), an HTTP backend from a
token stream.

Example:
    >>> from gatedrag.lm.cutter import RowStream, SentenceCutter
    >>> vocab = {1: "Paris", 2: " is", 3: " nice", 4: ".", 5: " It"}
    >>> cut = SentenceCutter(lambda ids: "".join(vocab[i] for i in ids), ["q"], [RowStream()],
    ...                      on_sentence=lambda key, s: "continue", budgets={"q": 10}, eos_ids={0})
    >>> for token in [1, 2, 3, 4, 5]:
    ...     cut.push(0, token, logprob=-0.1, entropy=0.5, top=[])
    >>> [s.text for s in cut.rows[0].sentences], cut.rows[0].stream.ids()
    (['Paris is nice.'], [5])
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gatedrag.lm.base import SentenceHook
from gatedrag.lm.sentences import find_sentence_end, first_stop
from gatedrag.types import FinishReason, Sentence, TokenStep

_TAIL = 32  # characters of already-emitted text kept to catch stop strings across a boundary


@dataclass
class RowStream:
    """The part of a row's generated text that is not yet a finished sentence."""

    steps: list[TokenStep] = field(default_factory=list)
    tail: str = ""

    def ids(self) -> list[int]:
        return [s.token_id for s in self.steps]


@dataclass
class RowState:
    """One row of a decoding call: its pending stream, budget and what it produced."""

    key: Hashable
    stream: RowStream
    budget: int
    ends: list[int] = field(default_factory=list)  # end character offset of each pending token
    generated: int = 0
    done: bool = False
    finish: FinishReason | None = None
    sentences: list[Sentence] = field(default_factory=list)


class SentenceCutter:
    """Cuts rows' token streams into sentences and stops rows (see the module doc).

    ``decode(ids) -> str`` turns token ids into text. With ``regroup``, once the hook asks any row
    to ``"act"`` or ``"pause"`` the other rows stop at their next sentence boundary (``finish="paused"``).
    """

    def __init__(
        self,
        decode: Callable[[list[int]], str],
        keys: Sequence[Hashable],
        streams: Sequence[RowStream],
        *,
        on_sentence: SentenceHook,
        budgets: Mapping[Hashable, int],
        eos_ids: set[int],
        max_sentence_tokens: int = 64,
        stop_strings: Sequence[str] = (),
        regroup: bool = True,
        split_sentences: bool = True,
    ) -> None:
        self.decode = decode
        self.on_sentence = on_sentence
        self.eos_ids = eos_ids
        self.max_sentence_tokens = max_sentence_tokens
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.regroup = regroup
        self.split_sentences = split_sentences
        self.rows = [RowState(k, st, int(budgets[k])) for k, st in zip(keys, streams)]
        for row in self.rows:
            row.ends = self._ends(row.stream.ids())
        self._acting = 0

    def _ends(self, ids: list[int]) -> list[int]:
        return [len(self.decode(ids[: i + 1])) for i in range(len(ids))]

    def push(self, i: int, token: int, **stats: Any) -> None:
        """Row ``i`` generated ``token``; ``stats`` are the other :class:`TokenStep` fields
        (``logprob``, ``entropy``, ``top``, ...) of the distribution it was drawn from."""
        row = self.rows[i]
        row.generated += 1
        if token in self.eos_ids:
            self._finish(row, "eos")
            return
        st = row.stream
        prev_end = row.ends[-1] if row.ends else 0
        st.steps.append(TokenStep.model_construct(token_id=token, text="", **stats))
        text = self.decode(st.ids())
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
            text = self.decode(st.ids())
        if row.done:
            return
        if len(st.steps) >= self.max_sentence_tokens:
            self._emit(row, text, len(text), final=False)
        if not row.done and row.generated >= row.budget:
            self._finish(row, "budget")

    def _emit(self, row: RowState, text: str, end: int, *, final: bool) -> None:
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
        if verdict in ("act", "pause"):
            self._acting += 1
            self._finish(row, "act" if verdict == "act" else "paused", flush=False)
        elif verdict == "done":
            self._finish(row, "done", flush=False)
        elif self.regroup and self._acting:
            self._finish(row, "paused", flush=False)

    def _finish(self, row: RowState, reason: FinishReason, *, flush: bool = True) -> None:
        if flush and row.stream.steps:
            text = self.decode(row.stream.ids())
            self._emit(row, text, len(text), final=True)
        row.done = True
        row.finish = reason


__all__ = ["RowState", "RowStream", "SentenceCutter"]
