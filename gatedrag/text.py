"""Checks on text that comes from users, before it reaches a tokenizer.

Python strings may hold lone surrogates (``"\\ud800"``, from a JSON or YAML escape or a broken
decoder): they are not Unicode, no tokenizer encodes them, so they are refused where text enters.

Example:
    >>> has_lone_surrogate("Paris ☀"), has_lone_surrogate("Paris \\ud800")
    (False, True)
    >>> require_unicode("Paris \\ud800", "the question")
    Traceback (most recent call last):
    ...
    gatedrag.errors.InputError: the question holds a lone surrogate (U+D800), which is not Unicode text
"""

from __future__ import annotations

import re

from gatedrag.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """Whether ``text`` holds a code point in the surrogate range."""
    return _SURROGATE.search(text) is not None


def holds_lone_surrogate(value: object) -> bool:
    """Whether a parsed document (JSON / YAML: dicts, lists, strings) holds a lone surrogate
    anywhere, keys included."""
    if isinstance(value, str):
        return has_lone_surrogate(value)
    if isinstance(value, dict):
        return any(holds_lone_surrogate(k) or holds_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(holds_lone_surrogate(v) for v in value)
    return False


def require_unicode(text: str, what: str) -> str:
    """``text``, or :class:`InputError` naming ``what`` if it holds a lone surrogate."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise InputError(f"{what} holds a lone surrogate (U+{ord(found.group()):04X}), which is not Unicode text")
    return text


__all__ = ["has_lone_surrogate", "holds_lone_surrogate", "require_unicode"]
