"""Conversations over the gated pipeline: a follow-up message is rewritten into a standalone question
from the history (the condense step, traced), then answered and streamed sentence by sentence.

With a :class:`~gatedrag.scheduler.Scheduler` in place of the pipeline, many sessions share one
model: their turns (and condense steps) are decoded together on the scheduler's worker.

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
from gatedrag.errors import InputError, SessionClosed
from gatedrag.events import Answer, Event, Finished
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.chat import Completion, complete
from gatedrag.pipeline import GatedRAG, validate_question
from gatedrag.scheduler import Scheduler

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
    """A conversation with the gated pipeline (see the module doc): ``rag`` answers alone, a
    :class:`~gatedrag.scheduler.Scheduler` answers together with the other sessions using it.
    ``history_window``: how many earlier turns the condense step reads; ``condense=False`` answers
    every message as written; ``max_message_chars``: longer messages are refused; ``deadline_s``:
    a turn past it ends at its next sentence boundary with what it has."""

    def __init__(
        self,
        rag: GatedRAG | Scheduler,
        *,
        history_window: int = 4,
        condense: bool = True,
        history: ChatHistory | None = None,
        max_message_chars: int = 4000,
        deadline_s: float | None = None,
    ):
        if history_window < 1:
            raise InputError("history_window must be at least 1")
        if max_message_chars < 1:
            raise InputError("max_message_chars must be at least 1")
        if deadline_s is not None and not deadline_s > 0:
            raise InputError("deadline_s must be positive (or None for no deadline)")
        self.scheduler = rag if isinstance(rag, Scheduler) else None
        self.rag = rag.rag if isinstance(rag, Scheduler) else rag
        self.history_window = history_window
        self.condense = condense
        self.history = history or ChatHistory()
        self.max_message_chars = max_message_chars
        self.deadline_s = deadline_s
        self.closed = False

    def close(self) -> None:
        """End the session: a later message raises :class:`~gatedrag.errors.SessionClosed` (the
        history stays readable and can still be saved)."""
        self.closed = True

    def _check(self, message: object) -> str:
        if self.closed:
            raise SessionClosed("this chat session is closed: open a new ChatSession (load() goes on from a saved one)")
        message = validate_question(message)
        if len(message) > self.max_message_chars:
            raise InputError(
                f"the message is {len(message)} characters; at most {self.max_message_chars} are accepted: "
                "shorten it or split it into several messages"
            )
        return message

    def _complete(self, prompt: str) -> Completion:
        def rewrite(lm: LanguageModel) -> Completion:
            return complete(lm, [prompt], max_tokens=64, stop=["\n"])[0]

        return self.scheduler.call(rewrite) if self.scheduler is not None else rewrite(self.rag.lm)

    # -- the condense step --------------------------------------------------------------------------
    def condense_message(self, message: str) -> Condensed:
        """The question ``message`` asks, given the history."""
        message = self._check(message)
        if not self.history.turns:
            return Condensed(message=message, question=message, action="first")
        if not self.condense or not refers_back(message):
            return Condensed(message=message, question=message, action="standalone")
        lines = []
        for t in self.history.turns[-self.history_window :]:
            lines += [f"User: {t.message}", f"Assistant: {t.answer.text or t.answer.answer}"]
        prompt = CONDENSE_PROMPT.format(history="\n".join(lines), message=message)
        try:
            done = self._complete(prompt)
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
        if self.scheduler is not None:
            answer = self.scheduler.ask(condensed.question, deadline_s=self.deadline_s)
        else:
            answer = self.rag.ask(condensed.question, deadline_s=self.deadline_s)
        return self._keep(condensed, answer)

    def stream(self, message: str) -> Generator[Condensed | Event | Turn, None, None]:
        """The turn as it happens: its :class:`Condensed` step, the answer's events as they are emitted
        (``sentence_accepted`` carries each sentence's confidence and citations), then the
        :class:`Turn`, which is also added to the history."""
        condensed = self.condense_message(message)
        yield condensed
        events: list[Event] = []
        answerer = self.scheduler if self.scheduler is not None else self.rag
        for event in answerer.stream(condensed.question, deadline_s=self.deadline_s):
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
    def load(
        cls, rag: GatedRAG | Scheduler, path: str | Path, *, history_window: int = 4, condense: bool = True
    ) -> ChatSession:
        """A session that goes on from a saved history."""
        try:
            history = ChatHistory.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"no chat history at {path}") from None
        except ValueError as err:
            raise InputError(f"{path} is not a gatedrag chat history: {str(err).splitlines()[0]}") from None
        return cls(rag, history=history, history_window=history_window, condense=condense)


__all__ = ["CONDENSE_PROMPT", "ChatHistory", "ChatSession", "Condensed", "Turn", "refers_back"]
