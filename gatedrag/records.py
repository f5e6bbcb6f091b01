"""Durable JSONL record files: one pydantic record a line, each appended, flushed and fsynced
before the next, so a run killed at any moment (even ``kill -9``) loses at most the line being
written and a rerun resumes after the last complete one. What the evaluation runner and the
fact-checker's batch mode write.

Example:
    >>> import tempfile, pathlib
    >>> from pydantic import BaseModel
    >>> class Row(BaseModel):
    ...     id: str
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> with JsonlWriter(path) as w:
    ...     w.write(Row(id="a"))
    >>> _ = path.open("a").write('{"id": "b"')          # a torn tail: an interrupted write
    >>> [r.id for r in read_jsonl(path, Row, repair=True)], path.read_text()
    (['a'], '{"id":"a"}\\n')
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from gatedrag.errors import ConfigError, RunInUse, StorageError

R = TypeVar("R", bound=BaseModel)


def read_jsonl(path: Path, model: type[R], *, repair: bool = False) -> list[R]:
    """The records of a JSONL file (none if it does not exist). Text after the last newline is the
    torn tail of an interrupted write: it is ignored, and cut off the file with ``repair``. A damaged
    complete line is a :class:`~gatedrag.errors.ConfigError` naming it."""
    if not path.is_file():
        return []
    raw = path.read_bytes()
    good_end = raw.rfind(b"\n") + 1
    records = []
    for i, line in enumerate(raw[:good_end].split(b"\n")):
        if not line.strip():
            continue
        try:
            records.append(model.model_validate_json(line))
        except ValueError:
            raise ConfigError(f"{path}: line {i + 1} is not a valid record; move the file away to start over") from None
    if repair and good_end < len(raw):
        with path.open("r+b") as f:
            f.truncate(good_end)
            f.flush()
            os.fsync(f.fileno())
    return records


class JsonlWriter:
    """Appends records durably: each line is written whole and fsynced before the next. A line
    that cannot be written (a full disk) is cut off again and :class:`StorageError` raised: the
    file keeps exactly the records written before it."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as err:
            raise StorageError(f"cannot open {path} for writing: {err.strerror or err}") from None

    def write(self, record: BaseModel) -> None:
        if self._fd is None:
            raise StorageError(f"{self.path} is closed")
        data = memoryview((record.model_dump_json() + "\n").encode("utf-8"))
        size = os.fstat(self._fd).st_size
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            os.fsync(self._fd)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)  # no torn line left behind (shrinking needs no space)
            raise StorageError(
                f"cannot write to {self.path}: {err.strerror or err}; the records before this one are kept"
            ) from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RunLock:
    """An exclusive lock on a run (``target``: its records file or directory), held while the run
    writes: a second process on the same run is refused with :class:`RunInUse` instead of appending
    the same records again. The operating system releases it when the process ends, however it
    ends (``kill -9`` included), so a stale lock never blocks a rerun. The lock file
    (``target.lock``, or ``target/.lock`` for a directory) holds the owner's pid.

    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp()) / "gated.jsonl"
    >>> with RunLock(run):
    ...     RunLock(run).acquire()
    Traceback (most recent call last):
    ...
    gatedrag.errors.RunInUse: another process (pid ...) is writing ...gated.jsonl: wait for it to end, or write to another place
    """

    def __init__(self, target: Path):
        self.target = target
        self.path = target / ".lock" if target.is_dir() else target.with_name(target.name + ".lock")
        self._f: Any = None

    def acquire(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            owner = f.read().strip() or "unknown"
            f.close()
            raise RunInUse(
                f"another process (pid {owner}) is writing {self.target}: wait for it to end, or write to another place"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing the descriptor releases the lock
            self._f = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_MISSING = object()


def fingerprint_changes(old: Any, new: Any, path: str = "", *, added_defaults: Any = _MISSING) -> list[str]:
    """The paths where the fingerprints ``old`` and ``new`` of a run differ. A key absent from
    ``old`` whose new value equals its value in ``added_defaults`` is not a difference: a setting
    added to gatedrag after the run started, left at its default, which keeps the earlier behaviour.

    >>> fingerprint_changes({"a": 1}, {"a": 2, "b": 0}, added_defaults={"b": 0})
    ['a: 1 -> 2']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new)):
            sub = added_defaults.get(k, _MISSING) if isinstance(added_defaults, dict) else _MISSING
            if k not in old and sub is not _MISSING and new.get(k) == sub:
                continue
            out += fingerprint_changes(old.get(k), new.get(k), f"{path}.{k}" if path else str(k), added_defaults=sub)
        return out
    return [] if old == new else [f"{path}: {old!r} -> {new!r}"]


def fingerprint_file(run_file: Path, current: dict[str, Any], *, added_defaults: Any = _MISSING) -> list[str]:
    """A run's fingerprint file: written (atomically) on first use and ``[]`` returned; later, the
    changes of ``current`` from the one on disk (:func:`fingerprint_changes`), for the caller to
    refuse. An unreadable file is a :class:`ConfigError`."""
    if run_file.is_file():
        try:
            old = json.loads(run_file.read_text(encoding="utf-8"))
        except (ValueError, OSError) as err:
            raise ConfigError(f"cannot read {run_file}: {err}: move it away to start over") from None
        return fingerprint_changes(old, current, added_defaults=added_defaults)
    write_atomic(run_file, json.dumps(current, indent=2, sort_keys=True))
    return []


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling renamed into place: a reader sees
    the old file or the new one, never part of one. A failed write (a full disk) removes the
    temporary file, leaves ``path`` as it was and raises :class:`StorageError`."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write {path}: {err.strerror or err}; the previous file is kept") from None


__all__ = ["JsonlWriter", "RunLock", "fingerprint_changes", "fingerprint_file", "read_jsonl", "write_atomic"]
