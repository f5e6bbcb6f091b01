"""Chat prompts and plain completions on any :class:`~gatedrag.lm.base.LanguageModel`.

A model that knows its chat template (the Jinja template shipped in its GGUF or its tokenizer)
declares it through :class:`ChatTemplated`; :func:`chat_prompt` renders messages with it, through
transformers' own renderer, or in a plain ``System:`` / ``User:`` / ``Assistant:`` format when the
model has none. :func:`complete` decodes prompts together (greedy or sampled) and returns each
completion's text and token steps (log-probability, entropy, top-k alternatives): what a chat model
or an OpenAI-compatible server hands out.

Example:
    >>> from gatedrag.lm.chat import ChatMessage, chat_prompt
    >>> chat_prompt([ChatMessage(role="user", content="Hi")], template=None)
    'User: Hi\\nAssistant:'
    >>> t = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}"
    >>> chat_prompt([ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hi")], template=t)
    '<system>Be brief.<user>Hi<assistant>'
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from gatedrag.errors import InputError, ModelError
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.sampling import Sampling
from gatedrag.types import Sentence, TokenStep

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    role: Role
    content: str


@runtime_checkable
class ChatTemplated(Protocol):
    """A model that knows the chat template it was trained with."""

    def chat_template(self) -> str | None:
        """The Jinja chat template (``None``: the model has none)."""
        ...


def text_content(content: str | Sequence[str | Mapping[str, Any]] | None) -> str:
    """A message's content as text: a string as it is, a list of parts (strings or ``{"type":
    "text", "text": ...}``, the OpenAI and LangChain shapes) joined; any other part (an image, a
    file) is an :class:`InputError`, since the model reads text only.

    >>> text_content([{"type": "text", "text": "Hi "}, "there"])
    'Hi there'
    """
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for part in content:
        if isinstance(part, str):
            parts.append(part)
        elif part.get("type") == "text":
            parts.append(str(part.get("text", "")))
        else:
            raise InputError(f"this model reads text only, not {part.get('type')!r} content")
    return "".join(parts)


PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}
PLAIN_STOPS = ("\nUser:", "\nSystem:")
"""Where a reply in the plain format ends (the model would go on to write the next turn)."""


def chat_stops(template: str | None) -> tuple[str, ...]:
    """Stop strings a reply needs under ``template`` (the plain format's turn markers; a template's
    own end-of-turn token ends the text by itself)."""
    return PLAIN_STOPS if template is None else ()


def chat_prompt(messages: Sequence[ChatMessage], *, template: str | None, add_generation_prompt: bool = True) -> str:
    """The prompt ``messages`` make under ``template`` (``None``: the plain format). A last
    assistant message is continued (its text is the start of the reply: a prefill)."""
    if not messages:
        raise InputError("a chat needs at least one message")
    prefill = messages[-1].role == "assistant"
    if template is None:
        lines = [f"{PLAIN_ROLES[m.role]}: {m.content}" for m in messages]
        return "\n".join(lines) + ("\nAssistant:" if add_generation_prompt and not prefill else "")
    from transformers.utils.chat_template_utils import render_jinja_template

    try:
        rendered, _ = render_jinja_template(
            conversations=[[m.model_dump() for m in messages]],
            chat_template=template,
            add_generation_prompt=add_generation_prompt and not prefill,
            continue_final_message=prefill,
        )
    except Exception as err:  # a template that refuses the conversation (e.g. roles out of order)
        raise InputError(f"the model's chat template refused the messages: {err}") from None
    return rendered[0]


def template_of(lm: LanguageModel) -> str | None:
    """The chat template ``lm`` declares, or ``None``."""
    return lm.chat_template() if isinstance(lm, ChatTemplated) else None


def openai_logprob(step: TokenStep, top: int) -> dict[str, Any]:
    """One generated token as OpenAI's chat ``logprobs.content`` lists it: ``token``, ``logprob``
    (natural log), ``bytes`` (UTF-8) and its ``top`` most likely alternatives, each likewise."""

    def one(text: str, logprob: float) -> dict[str, Any]:
        return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}

    return {**one(step.text, step.logprob), "top_logprobs": [one(a.text, a.logprob) for a in step.top[:top]]}


# -- GGUF metadata: read the header's key-value pairs only (the tensors are never touched) ----------
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


def _skip(f: BinaryIO, kind: int) -> None:
    if kind == _STRING:
        (n,) = struct.unpack("<Q", f.read(8))
        f.seek(n, 1)
    elif kind == _ARRAY:
        inner, count = struct.unpack("<IQ", f.read(12))
        if inner in _SCALARS:
            f.seek(struct.calcsize(_SCALARS[inner]) * count, 1)
        else:
            for _ in range(count):
                _skip(f, inner)
    elif kind in _SCALARS:
        f.seek(struct.calcsize(_SCALARS[kind]), 1)
    else:
        raise ModelError(f"unknown GGUF value type {kind}")


def gguf_string(path: Path, key: str) -> str | None:
    """The string value of metadata ``key`` in the GGUF file at ``path`` (``None``: absent)."""
    with open(path, "rb") as f:
        if f.read(4) != b"GGUF":
            raise ModelError(f"{path} is not a GGUF file")
        version, _, kv_count = struct.unpack("<IQQ", f.read(20))
        if version < 2:
            raise ModelError(f"{path}: GGUF version {version} is not supported")
        for _ in range(kv_count):
            (n,) = struct.unpack("<Q", f.read(8))
            name = f.read(n).decode("utf-8", errors="replace")
            (kind,) = struct.unpack("<I", f.read(4))
            if name == key and kind == _STRING:
                (size,) = struct.unpack("<Q", f.read(8))
                return f.read(size).decode("utf-8")
            _skip(f, kind)
    return None


# -- completions ------------------------------------------------------------------------------------
SEGMENT_TOKENS = 32
"""The longest piece a completion streams when its text reaches no sentence end."""


class Completion(BaseModel):
    """What the model wrote after one prompt: its text, its token steps, why it stopped
    (``stop``: end of text or a stop string; ``length``: ``max_tokens`` spent) and the prompt's
    length in tokens."""

    model_config = ConfigDict(extra="forbid")
    text: str
    tokens: list[TokenStep] = Field(default_factory=list)
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int = 0


def complete(
    lm: LanguageModel,
    prompts: Sequence[str],
    *,
    max_tokens: int | Sequence[int],
    stop: Sequence[str] = (),
    sampling: Sampling | None = None,
    on_segment: Callable[[int, Sentence], None] | None = None,
    stopped: Callable[[int], bool] | None = None,
) -> list[Completion]:
    """Decode ``prompts`` together, greedy (or sampled with ``sampling``), each up to ``max_tokens``
    new tokens (one number, or one a prompt) or a ``stop`` string (cut before it). ``on_segment(i,
    piece)`` is told each piece of prompt ``i``'s text as it is written (sentences, or
    :data:`SEGMENT_TOKENS` tokens at most); a prompt for which ``stopped(i)`` turns true ends at its next piece (its
    client went away; the other rows go on)."""
    if isinstance(prompts, str):
        raise InputError("complete() takes a list of prompts")
    budgets = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else list(max_tokens)
    if len(budgets) != len(prompts) or any(not isinstance(b, int) or b < 1 for b in budgets):
        raise InputError(f"max_tokens must be at least 1 for every prompt, got {max_tokens}")
    session = lm.open_session()
    keys: list[Hashable] = list(range(len(prompts)))
    prompt_tokens = {k: session.start(k, p) for k, p in zip(keys, prompts)}

    def hook(key: Hashable, piece: Sentence) -> Literal["continue", "done"]:
        if on_segment is not None:
            on_segment(int(key), piece)  # type: ignore[call-overload]
        return "done" if stopped is not None and stopped(int(key)) else "continue"  # type: ignore[call-overload]

    try:
        outcomes = session.decode(
            keys,
            on_sentence=hook,
            budgets=dict(zip(keys, budgets)),
            max_sentence_tokens=SEGMENT_TOKENS,
            stop_strings=tuple(s for s in stop if s),
            regroup=False,
            sampling=sampling,
        )
    finally:
        for k in keys:
            session.close(k)
    out = []
    for k in keys:
        o = outcomes[k]
        tokens = [t for s in o.sentences for t in s.tokens]
        text = _text(o.sentences)
        out.append(
            Completion(
                text=text,
                tokens=tokens,
                finish_reason="length" if o.finish == "budget" else "stop",
                prompt_tokens=prompt_tokens[k],
            )
        )
    return out


def gap(previous: Sentence | None, piece: Sentence) -> str:
    """The whitespace between ``previous`` and ``piece`` in the written text (a piece's text is
    stripped; the newlines between paragraphs are in its tokens)."""
    if previous is None:
        return ""
    before = "".join(t.text for t in previous.tokens)
    raw = "".join(t.text for t in piece.tokens)
    return before[len(before.rstrip()) :] + raw[: len(raw) - len(raw.lstrip())]


def _text(pieces: Sequence[Sentence]) -> str:
    """The pieces' texts joined by the whitespace written between them."""
    return "".join(gap(pieces[i - 1] if i else None, p) + p.text for i, p in enumerate(pieces))


__all__ = [
    "SEGMENT_TOKENS",
    "ChatMessage",
    "ChatTemplated",
    "Completion",
    "chat_prompt",
    "complete",
    "gap",
    "gguf_string",
    "template_of",
]
