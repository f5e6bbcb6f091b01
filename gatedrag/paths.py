"""Paths a user typed: ``~`` and ``~user`` expanded, an unknown user a typed error.

``Path.expanduser`` raises a bare ``RuntimeError`` for ``~nosuchuser/...`` (found by the CLI fuzz:
``gatedrag corpus count '~x' ...``); every place gatedrag expands a ``~`` goes through
:func:`user_path` instead (paths it does not expand cannot raise this).

Example:
    >>> from gatedrag.errors import CorpusIndexError
    >>> user_path("index/dir", CorpusIndexError).as_posix()
    'index/dir'
    >>> user_path("~no-such-user-here/index", CorpusIndexError)
    Traceback (most recent call last):
    ...
    gatedrag.errors.CorpusIndexError: cannot expand '~no-such-user-here/index': no home directory is known for that user
"""

from __future__ import annotations

from pathlib import Path

from gatedrag.errors import GatedRAGError


def user_path(text: str | Path, error: type[GatedRAGError]) -> Path:
    """``text`` as a :class:`~pathlib.Path` with a leading ``~`` / ``~user`` expanded; a home
    directory that cannot be determined raises ``error`` (a :class:`GatedRAGError` the caller picks)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        raise error(f"cannot expand {str(text)!r}: no home directory is known for that user") from None


__all__ = ["user_path"]
