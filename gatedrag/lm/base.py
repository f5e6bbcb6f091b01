"""The language-model protocol gatedrag drives.

A backend decodes several *rows* (one per question being answered) together, keeps each row's KV
cache between calls, and reports every finished sentence to a hook with the per-token
distributions it was drawn from. The hook's verdict decides what happens to the row:
``"continue"`` (keep writing), ``"done"`` (the answer is complete) or ``"act"`` (stop so that the
controller can act on this sentence, e.g. retrieve).

Example (with any backend, e.g. :class:`gatedrag.lm.hf.HFLanguageModel`)::

    session = lm.open_session()
    session.start("q1", "Question: Where is Paris?\\nAnswer:")
    out = session.decode(["q1"], on_sentence=lambda key, s: "continue", budgets={"q1": 64})
    print(out["q1"].sentences[0].text)
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from gatedrag.config import KnowledgeControlConfig
from gatedrag.types import DecodeOutcome, Sentence

SentenceVerdict = Literal["continue", "done", "act"]
"""What a sentence hook decides: keep writing, the row is finished, or stop so the controller can act."""

SentenceHook = Callable[[Hashable, Sentence], SentenceVerdict]
"""Called with (row key, sentence) for each completed sentence."""


class Twin(BaseModel):
    """A no-context twin of a row: the same answer tokens decoded after ``prompt`` (the prompt
    without passages) in the same batch, so every token carries CK-PLUG's confidence gain; with
    ``mix`` the row's logits are re-mixed under ``control``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    control: KnowledgeControlConfig = KnowledgeControlConfig()
    mix: bool = False


@runtime_checkable
class DecodeSession(Protocol):
    """Rows being decoded by one model, each with its own prompt and cache."""

    supports_twins: bool
    """Whether :meth:`start` accepts a :class:`Twin` (knowledge-reliance control and the
    confidence-gain signal need one)."""

    def start(
        self,
        key: Hashable,
        prompt: str,
        *,
        cached_prefix: str = "",
        continuation: Sequence[int] = (),
        twin: Twin | None = None,
    ) -> int:
        """(Re)start row ``key`` on ``prompt`` followed by the token ids ``continuation`` (the answer
        so far). ``cached_prefix``, a prefix of ``prompt`` shared by many rows (instructions and
        few-shot demos), is encoded once and reused. ``twin``: decode a no-context twin alongside
        (only where :attr:`supports_twins`). Returns the row's prompt length in tokens (the twin's
        included)."""
        ...

    def decode(
        self,
        keys: Sequence[Hashable],
        *,
        on_sentence: SentenceHook,
        budgets: Mapping[Hashable, int],
        max_sentence_tokens: int = 64,
        stop_strings: Sequence[str] = (),
        regroup: bool = True,
        streamer: Any = None,
        split_sentences: bool = True,
    ) -> dict[Hashable, DecodeOutcome]:
        """Continue the rows ``keys`` together until each stops; ``budgets`` caps new tokens per row.

        Segments handed to the hook end at sentence boundaries or after ``max_sentence_tokens``
        tokens; with ``split_sentences=False`` only the length cuts them (fixed-length chunks).

        With ``regroup``, once the hook asks any row to ``"act"`` the other rows stop at their next
        sentence boundary (``finish="paused"``) so the controller can serve them all in one round.
        """
        ...

    def close(self, key: Hashable) -> None:
        """Forget a row and free its cache."""
        ...


@runtime_checkable
class LanguageModel(Protocol):
    """A causal language model that exposes its next-token distributions while it writes."""

    name: str
    context_length: int

    def count_tokens(self, text: str) -> int:
        """Number of tokens ``text`` encodes to (without special tokens)."""
        ...

    def open_session(self) -> DecodeSession:
        """A new, empty set of rows."""
        ...


__all__ = ["DecodeSession", "LanguageModel", "SentenceHook", "SentenceVerdict", "Twin"]
