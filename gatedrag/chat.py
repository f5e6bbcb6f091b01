"""Conversations over the gated pipeline: a follow-up message is rewritten into a standalone question
from the history (the condense step, traced), then answered and streamed sentence by sentence.

A message that already stands alone (no pronoun or "that"/"there"-style reference to what came
before, or no history yet) is answered as it is; otherwise the model rewrites it, greedily, from the
last ``history_window`` turns (:data:`CONDENSE_PROMPT`). Every turn keeps the message, the question
that was answered, how it was obtained and the whole :class:`~gatedrag.events.Answer`.

Example:
    >>> from gatedrag.chat import ChatSession
    >>> from gatedrag.pipeline import GatedRAG
    >>> from helpers.scripted import ScriptedLM
    >>> chat = ChatSession(GatedRAG(ScriptedLM([("So the answer is Paris.", 0.9)], []), None))
    >>> turn = chat.send("What is the capital of France?")
    >>> turn.answer.answer, turn.condensed.action
    ('Paris', 'first')
    >>> chat.send("How many people live there?").condensed.action   # refers back: rewritten
    'rewritten'
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Generator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.aio import iterate_in_thread
from gatedrag.errors import InputError
from gatedrag.events import Answer, Event, Finished
from gatedrag.lm.chat import complete
from gatedrag.pipeline import GatedRAG, validate_question

CONDENSE_PROMPT = """Rewrite the follow-up question so that it can be understood without the conversation: replace every pronoun or reference with the name it stands for. Write only the question.

Conversation:
User: Who directed the film Ed Wood?
Assistant: Ed Wood was directed by Tim Burton.
Follow-up: When was he born?
Standalone question: When was Tim Burton born?

Conversation:
{history}
Follow-up: {message}
Standalone question:"""
"""The condense step's prompt (one demonstration, then the conversation so far)."""

_REFERS = re.compile(
    r"\b(he|she|it|its|they|them|their|theirs|his|her|hers|him|this|that|these|those|there|then|"
    r"the same|the former|the latter|which one|what about|how about)\b",
    re.IGNORECASE,
)


def refers_back(message: str) -> bool:
    """Whether ``message`` points at something said before (a pronoun, "that", "there", "what about ...").

    >>> refers_back("When was he born?"), refers_back("When was Tim Burton born?")
    (True, False)
    """
    return bool(_REFERS.search(message))


CondenseAction = Literal["first", "standalone", "rewritten", "kept"]
"""``first``: no history yet; ``standalone``: the message names what it asks about; ``rewritten``:
the model rewrote it from the history; ``kept``: it refers back but the rewrite failed, so the
message was answered as written."""


class Condensed(BaseModel):
    """The condense step of a turn: the message, the question answered and why it is that one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["condensed"] = "condensed"
    message: str
    question: str
    action: CondenseAction
    note: str | None = None


class Turn(BaseModel):
    """One exchange: the user's message, its condense step and the gated answer."""

    model_config = ConfigDict(extra="forbid")
    message: str
    condensed: Condensed
    answer: Answer


class ChatHistory(BaseModel):
    """The turns of a conversation (saved and loaded as JSON)."""

    model_config = ConfigDict(extra="forbid")
    turns: list[Turn] = Field(default_factory=list)


class ChatSession:
    """A conversation with the gated pipeline (see the module doc). ``history_window``: how many
    earlier turns the condense step reads; ``condense=False`` answers every message as written."""

    def __init__(
        self, rag: GatedRAG, *, history_window: int = 4, condense: bool = True, history: ChatHistory | None = None
    ):
        if history_window < 1:
            raise InputError("history_window must be at least 1")
        self.rag = rag
        self.history_window = history_window
        self.condense = condense
        self.history = history or ChatHistory()

    # -- the condense step --------------------------------------------------------------------------
    def condense_message(self, message: str) -> Condensed:
        """The question ``message`` asks, given the history."""
        message = validate_question(message)
        if not self.history.turns:
            return Condensed(message=message, question=message, action="first")
        if not self.condense or not refers_back(message):
            return Condensed(message=message, question=message, action="standalone")
        lines = []
        for t in self.history.turns[-self.history_window :]:
            lines += [f"User: {t.message}", f"Assistant: {t.answer.text or t.answer.answer}"]
        prompt = CONDENSE_PROMPT.format(history="\n".join(lines), message=message)
        try:
            done = complete(self.rag.lm, [prompt], max_tokens=64, stop=["\n"])[0]
        except Exception as err:  # the turn goes on with the message as written
            return Condensed(
                message=message, question=message, action="kept", note=f"rewrite failed: {type(err).__name__}: {err}"
            )
        question = done.text.strip().strip('"').strip()
        if not question or len(question) > 4 * len(message) + 200:
            return Condensed(message=message, question=message, action="kept", note=f"unusable rewrite: {question!r}")
        return Condensed(message=message, question=question, action="rewritten")

    # -- turns -------------------------------------------------------------------------------------
    def send(self, message: str) -> Turn:
        """Answer ``message`` and add the turn to the history."""
        condensed = self.condense_message(message)
        answer = self.rag.ask(condensed.question)
        return self._keep(condensed, answer)

    def stream(self, message: str) -> Generator[Condensed | Event | Turn, None, None]:
        """The turn as it happens: its :class:`Condensed` step, the answer's events as they are emitted
        (``sentence_accepted`` carries each sentence's confidence and citations), then the
        :class:`Turn`, which is also added to the history."""
        condensed = self.condense_message(message)
        yield condensed
        events: list[Event] = []
        for event in self.rag.stream(condensed.question):
            events.append(event)
            yield event
        if events and isinstance(events[-1], Finished):
            yield self._keep(condensed, Answer.from_events(condensed.question, events))

    async def astream(self, message: str) -> AsyncIterator[Condensed | Event | Turn]:
        """:meth:`stream` for asyncio (the model works in a worker thread)."""
        async for item in iterate_in_thread(self.stream(message)):
            yield item

    def _keep(self, condensed: Condensed, answer: Answer) -> Turn:
        turn = Turn(message=condensed.message, condensed=condensed, answer=answer)
        self.history.turns.append(turn)
        return turn

    # -- history -----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the conversation."""
        self.history = ChatHistory()

    def save(self, path: str | Path) -> Path:
        """Write the history as JSON."""
        path = Path(path)
        path.write_text(self.history.model_dump_json(indent=1), encoding="utf-8")
        return path

    @classmethod
    def load(cls, rag: GatedRAG, path: str | Path, *, history_window: int = 4, condense: bool = True) -> ChatSession:
        """A session that goes on from a saved history."""
        try:
            history = ChatHistory.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"no chat history at {path}") from None
        except ValueError as err:
            raise InputError(f"{path} is not a gatedrag chat history: {str(err).splitlines()[0]}") from None
        return cls(rag, history=history, history_window=history_window, condense=condense)


__all__ = ["CONDENSE_PROMPT", "ChatHistory", "ChatSession", "Condensed", "Turn", "refers_back"]
