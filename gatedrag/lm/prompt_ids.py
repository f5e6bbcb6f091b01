"""A row's token ids from its prompt, shared prefix and answer so far, checked against the context.

Every backend encodes a row the same way: the shared prefix (instructions and few-shot demos) on
its own with the model's start token, the rest of the prompt without, then the answer's tokens
exactly as they were generated.

Example:
    >>> from gatedrag.lm.prompt_ids import row_ids
    >>> encode = lambda text, special=False: ([0] if special else []) + [ord(c) for c in text]
    >>> row_ids(encode, "ab: cd", cached_prefix="ab:", continuation=[7], context_length=16)
    ([0, 97, 98, 58], [0, 97, 98, 58, 32, 99, 100, 7])
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from gatedrag.errors import ContextLengthError, InputError


def row_ids(
    encode: Callable[..., list[int]],
    prompt: str,
    *,
    cached_prefix: str = "",
    continuation: Sequence[int] = (),
    context_length: int,
    hint: str = "",
) -> tuple[list[int], list[int]]:
    """``(prefix_ids, ids)``: the prefix's tokens and the row's (prompt, then ``continuation``).
    Raises :class:`InputError` for an empty prompt or a prefix it does not start with, and
    :class:`ContextLengthError` when no token is left to write (``hint``: what else could help)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt must be a non-empty string")
    if cached_prefix and not prompt.startswith(cached_prefix):
        raise InputError("cached_prefix must be a prefix of the prompt")
    prefix_ids = encode(cached_prefix, special=True) if cached_prefix else []
    ids = prefix_ids + encode(prompt[len(cached_prefix) :], special=not cached_prefix) + list(continuation)
    if len(ids) + 1 > context_length:
        raise ContextLengthError(
            f"the prompt is {len(ids):,} tokens, longer than the model's context of {context_length:,}: "
            "shorten the question, retrieve fewer or shorter passages, or lower the answer budget" + hint
        )
    return prefix_ids, ids


__all__ = ["row_ids"]
