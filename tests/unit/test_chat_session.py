"""Chat sessions: follow-ups condensed from the history (traced), streamed turns, history kept,
saved and loaded."""

from __future__ import annotations

import asyncio
import threading

import pytest
from helpers.scripted import ScriptedLM

from gatedrag.chat import ChatSession, Condensed, Turn
from gatedrag.errors import InputError, SessionClosed
from gatedrag.events import SentenceAccepted
from gatedrag.pipeline import GatedRAG
from gatedrag.scheduler import Scheduler


def session(rewrite="How many people live in Paris?", **kw) -> tuple[ChatSession, ScriptedLM]:
    lm = ScriptedLM([("So the answer is Paris.", 0.9)], [], rewrite=rewrite)
    return ChatSession(GatedRAG(lm, None), **kw), lm


def test_a_follow_up_is_rewritten_from_the_history_and_a_standalone_one_is_not():
    chat, lm = session()
    first = chat.send("What is the capital of France?")
    assert first.condensed.action == "first" and first.answer.question == "What is the capital of France?"
    follow = chat.send("How many people live there?")
    assert follow.condensed.action == "rewritten" and follow.condensed.question == "How many people live in Paris?"
    assert follow.answer.question == "How many people live in Paris?"
    condense_prompt = next(p for p in lm.started if "Standalone question:" in p)
    assert "User: What is the capital of France?" in condense_prompt and "So the answer is Paris." in condense_prompt
    alone = chat.send("What is the capital of Italy?")
    assert alone.condensed.action == "standalone" and len(chat.history.turns) == 3


def test_a_failed_or_unusable_rewrite_keeps_the_message():
    chat, _ = session(rewrite="")
    chat.send("What is the capital of France?")
    kept = chat.send("Who founded it?")
    assert kept.condensed.action == "kept" and kept.condensed.question == "Who founded it?" and kept.condensed.note
    plain, _ = session(condense=False)
    plain.send("What is the capital of France?")
    assert plain.send("Who founded it?").condensed.action == "standalone"


def test_stream_yields_the_condense_step_the_events_and_the_turn():
    chat, _ = session()
    chat.send("What is the capital of France?")
    items = list(chat.stream("How big is it?"))
    assert isinstance(items[0], Condensed) and isinstance(items[-1], Turn)
    assert any(isinstance(i, SentenceAccepted) and i.confidence for i in items)
    assert items[-1] is chat.history.turns[-1] and items[-1].answer.question == items[0].question

    async def collect():
        return [i async for i in chat.astream("And its mayor?")]

    got = asyncio.run(collect())
    assert isinstance(got[0], Condensed) and isinstance(got[-1], Turn) and len(chat.history.turns) == 3


def test_history_saves_loads_resets_and_bad_input_is_refused(tmp_path):
    chat, _ = session()
    chat.send("What is the capital of France?")
    chat.send("How many people live there?")
    path = chat.save(tmp_path / "chat.json")
    again = ChatSession.load(chat.rag, path)
    assert again.history == chat.history and again.send("What about its mayor?").condensed.action == "rewritten"
    chat.reset()
    assert chat.history.turns == [] and chat.send("Who lives there?").condensed.action == "first"
    with pytest.raises(InputError):
        chat.send("   ")
    with pytest.raises(InputError, match="no chat history"):
        ChatSession.load(chat.rag, tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="not a gatedrag chat history"):
        ChatSession.load(chat.rag, tmp_path / "bad.json")
    with pytest.raises(InputError):
        ChatSession(chat.rag, history_window=0)


def test_sessions_sharing_a_scheduler_get_the_turns_they_get_alone():
    conversations = [
        ["What is the capital of France?", "How many people live there?", "Who founded it?"],
        ["Where is the Louvre?", "When was it built?"],
        ["Who wrote Hamlet?", "What else did he write?", "Where was he born?"],
    ]
    alone = []
    for messages in conversations:
        chat, _ = session()
        alone.append([chat.send(m) for m in messages])
    lm = ScriptedLM([("So the answer is Paris.", 0.9)], [], rewrite="How many people live in Paris?")
    with Scheduler(GatedRAG(lm, None)) as scheduler:
        shared: list[list] = [[] for _ in conversations]

        def talk(i: int) -> None:
            chat = ChatSession(scheduler)
            shared[i] = [chat.send(m) for m in conversations[i]]

        threads = [threading.Thread(target=talk, args=(i,)) for i in range(len(conversations))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for got, want in zip(shared, alone):
        assert [(t.condensed, t.answer.text, t.answer.answer) for t in got] == [
            (t.condensed, t.answer.text, t.answer.answer) for t in want
        ]


def test_a_closed_session_an_oversized_message_and_a_bad_deadline_are_refused():
    chat, _ = session(max_message_chars=50)
    with pytest.raises(InputError, match="at most 50"):
        chat.send("x" * 51)
    with pytest.raises(InputError):
        chat.send(42)  # type: ignore[arg-type]
    chat.send("What is the capital of France?")
    chat.close()
    with pytest.raises(SessionClosed, match="open a new ChatSession"):
        chat.send("And Italy?")
    with pytest.raises(SessionClosed):
        next(chat.stream("And Spain?"))
    assert len(chat.history.turns) == 1  # the history stays readable
    with pytest.raises(InputError):
        session(deadline_s=0)
