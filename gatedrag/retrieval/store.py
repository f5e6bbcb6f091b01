"""On-disk layout shared by the retrieval indexes: a directory holding the index in its library's
own format, ``passages.jsonl`` and a JSON manifest, written atomically (no pickle anywhere).

Example:
    >>> import tempfile, pathlib
    >>> from gatedrag.types import Passage
    >>> d = pathlib.Path(tempfile.mkdtemp()) / "idx"
    >>> with atomic_directory(d) as tmp:
    ...     write_passages(tmp, [Passage(id="1", text="a")])
    ...     write_manifest(tmp, {"format": 1, "backend": "demo", "passages": 1})
    >>> manifest = read_manifest(d, backend="demo", version=1)
    >>> [p.id for p in read_passages(d, manifest)]
    ['1']
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gatedrag.errors import RetrievalIndexError
from gatedrag.types import Passage

MANIFEST = "gatedrag-index.json"
PASSAGES = "passages.jsonl"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def recover_directory(final: Path) -> None:
    """Undo what a build killed mid-swap left: ``final`` moved aside (``.old-PID``) before the new
    index was moved in is moved back; the temporary folders of builds whose process is gone are
    removed."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for stale in final.parent.glob(final.name + ".building-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    if not final.exists():
        moved = sorted(final.parent.glob(final.name + ".old-*"), key=lambda p: p.stat().st_mtime)
        if moved:
            os.replace(moved[-1], final)


@contextmanager
def atomic_directory(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` to fill; it replaces ``final`` only when the block
    ends without error, so a killed or failed build leaves any previous index untouched (a kill
    between the two renames of the swap is undone by :func:`recover_directory`, which every
    reader and builder calls first)."""
    final = Path(final)
    recover_directory(final)
    tmp = final.with_name(final.name + f".building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        old = final.with_name(final.name + f".old-{os.getpid()}")
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_passages(directory: Path, passages: Sequence[Passage]) -> None:
    with open(directory / PASSAGES, "w", encoding="utf-8") as fh:
        for p in passages:
            fh.write(p.model_dump_json() + "\n")


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def read_manifest(directory: Path, *, backend: str, version: int, expect_sha256: str | None = None) -> dict[str, Any]:
    """The manifest of the index in ``directory``; refuse one that is missing, of another backend or
    format, or (with ``expect_sha256``) built from another version of the corpus."""
    d = Path(directory)
    recover_directory(d)
    try:
        manifest = json.loads((d / MANIFEST).read_text())
    except FileNotFoundError:
        raise RetrievalIndexError(f"no gatedrag index in {d}: build one with `gatedrag index build CORPUS`") from None
    except (OSError, ValueError) as err:
        raise RetrievalIndexError(f"unreadable index manifest in {d}: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != version or manifest.get("backend") != backend:
        raise RetrievalIndexError(f"index in {d} is not a {backend} index of format {version}; rebuild it")
    if expect_sha256 and manifest.get("corpus_sha256") != expect_sha256:
        raise RetrievalIndexError(f"index in {d} was built from another version of the corpus; rebuild it")
    return manifest


def read_passages(directory: Path, manifest: dict[str, Any]) -> list[Passage]:
    """The passages an index lists, refusing a partial file."""
    d = Path(directory)
    try:
        with open(d / PASSAGES, encoding="utf-8") as fh:
            passages = [Passage.model_validate_json(line) for line in fh if line.strip()]
    except (OSError, ValueError) as err:
        raise RetrievalIndexError(f"cannot read the passages of the index in {d}: {err}; rebuild it") from None
    if len(passages) != manifest.get("passages"):
        raise RetrievalIndexError(f"index in {d} is partial ({len(passages)} passages of {manifest.get('passages')})")
    return passages


__all__ = [
    "MANIFEST",
    "PASSAGES",
    "atomic_directory",
    "read_manifest",
    "read_passages",
    "recover_directory",
    "write_manifest",
    "write_passages",
]
