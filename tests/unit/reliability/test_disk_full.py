"""A full disk: a clear StorageError, and nothing already written is lost or torn."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest
from pydantic import BaseModel

from gatedrag.errors import StorageError
from gatedrag.records import JsonlWriter, read_jsonl, write_atomic


class Row(BaseModel):
    id: int
    text: str


def fill(path) -> int:
    """Write rows until the disk refuses one; the number written."""
    written = 0
    with JsonlWriter(path) as writer, pytest.raises(StorageError, match="records before this one are kept"):
        while True:
            writer.write(Row(id=written, text="x" * 3000))
            written += 1
    return written


@pytest.fixture
def small_disk(tmp_path):
    """A 64 KiB tmpfs (needs root and mount; skipped elsewhere)."""
    where = tmp_path / "disk"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
                                           capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a small tmpfs here")
    yield where
    subprocess.run(["umount", str(where)], check=False)


def test_a_full_tmpfs_keeps_every_record_written_before(small_disk):
    path = small_disk / "rows.jsonl"
    written = fill(path)
    rows = read_jsonl(path, Row)
    assert 0 < written == len(rows) and [r.id for r in rows] == list(range(written))
    assert path.read_bytes().endswith(b"\n")  # no torn line
    before = (small_disk / "run.json").exists()
    with pytest.raises(StorageError, match="previous file is kept"):
        write_atomic(small_disk / "run.json", "y" * 100_000)
    assert (small_disk / "run.json").exists() == before and not list(small_disk.glob("run.json.tmp-*"))


def test_a_write_cut_short_by_the_disk_is_cut_off_again(tmp_path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    with JsonlWriter(path) as writer:
        writer.write(Row(id=0, text="kept"))
        real = os.write

        def half_then_full(fd, data):  # the disk fills in the middle of a line
            if len(data) > 10:
                real(fd, bytes(data[:10]))
                raise OSError(errno.ENOSPC, "No space left on device")
            return real(fd, data)

        monkeypatch.setattr(os, "write", half_then_full)
        with pytest.raises(StorageError, match="No space left on device"):
            writer.write(Row(id=1, text="lost"))
    assert [r.id for r in read_jsonl(path, Row)] == [0] and path.read_text().count("\n") == 1


def test_an_index_swap_killed_between_its_renames_gives_the_previous_index_back(tmp_path):
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.types import Passage

    final = tmp_path / "idx"
    BM25Retriever.build([Passage(id="old", text="Paris is in France.")]).save(final)
    os.replace(final, tmp_path / "idx.old-999999")  # a kill right after the first rename of a swap
    (tmp_path / "idx.building-999999").mkdir()  # and the dead build's half-written folder
    loaded = BM25Retriever.load(final)
    assert [p.id for p in loaded.passages] == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["idx"]
