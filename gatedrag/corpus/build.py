"""Build an Infini-gram index of a JSONL corpus, offline, and switch to it atomically.

The corpus is streamed (constant memory), tokenised in batches with an offline tokenizer
(:mod:`gatedrag.corpus.tokenizer`) and written as Infini-gram's own shard files
(``tokenized.N``: documents as ids, each preceded by an all-ones separator; ``offset.N``;
``metadata.N`` with each passage's id and title, so a match leads back to its passage). The suffix
arrays are then built by the ``infini-gram`` package's indexer. A shard is closed when it reaches
``shard_tokens`` tokens, so corpora larger than RAM build shard by shard.

Everything is written into ``INDEX/v-<stamp>.partial``; only when every file and the manifest are
on disk is it renamed and the ``INDEX/current`` symlink replaced (``os.replace``, atomic). A build
killed midway leaves the previous index usable.

Example (the demo corpus; a few seconds)::

    from gatedrag.corpus.build import build_index
    from gatedrag.retrieval.corpus import demo_corpus_path
    manifest = build_index(demo_corpus_path(), "/tmp/demo-index", tokenizer="gpt2")
    print(manifest.documents, manifest.tokens, manifest.size_bytes)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from gatedrag.corpus.manifest import IndexManifest, TokenizerInfo, read_manifest, write_manifest
from gatedrag.corpus.tokenizer import IndexTokenizer, load_index_tokenizer
from gatedrag.errors import CorpusIndexError
from gatedrag.paths import user_path
from gatedrag.retrieval.corpus import corpus_sha256, iter_corpus
from gatedrag.types import Passage

Progress = Callable[[str, int, int], None]
"""``progress(phase, done, total)``: phases ``tokenize`` (passages) and ``suffix-array`` (shards)."""

_NP_DTYPE = {"u8": np.uint8, "u16": np.uint16, "u32": np.uint32}
_BATCH = 4096


def infinigram_available() -> bool:
    """Whether the ``infini-gram`` package (Linux/macOS wheels for CPython 3.11-3.13) is installed."""
    try:
        import infini_gram.engine  # noqa: F401
    except ImportError:
        return False
    return True


def default_corpus_index_dir(corpus_digest: str, tokenizer: str = "gpt2") -> Path:
    """Where the Infini-gram index of a corpus with this checksum is kept by default."""
    from gatedrag.lm.packaged import default_cache_dir

    safe = "".join(ch if ch.isalnum() else "-" for ch in Path(tokenizer).name or tokenizer)[:24]
    return default_cache_dir() / "indexes" / f"infinigram-{corpus_digest[:16]}-{safe}"


def default_shard_tokens(token_width: int) -> int:
    """Tokens per shard so that one shard's suffix-array build fits in about 40% of RAM."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 8 << 30
    return max(1 << 20, int(0.4 * ram) // (token_width + 8))


def _count_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _batches(passages: Iterator[Passage], size: int) -> Iterator[list[Passage]]:
    batch: list[Passage] = []
    for p in passages:
        batch.append(p)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _ShardWriter:
    """Writes Infini-gram's ``tokenized/offset/metadata/metaoff`` files, one shard at a time."""

    def __init__(self, directory: Path, token_dtype: str, shard_tokens: int):
        self.dir, self.dtype, self.limit = directory, _NP_DTYPE[token_dtype], shard_tokens
        self.width = np.dtype(self.dtype).itemsize
        self.sep = b"\xff" * self.width
        self.shard, self.files = -1, None
        self.shard_tokens = 0
        self.lengths: list[int] = []

    def _open(self) -> None:
        self.close()
        self.shard += 1
        names = ("tokenized", "offset", "metadata", "metaoff")
        self.files = {n: open(self.dir / f"{n}.{self.shard}", "wb") for n in names}  # noqa: SIM115 (closed in close())
        self.pos = {"tokenized": 0, "metadata": 0}
        self.shard_tokens = 0

    def add(self, ids: list[int], passage: Passage) -> None:
        if self.files is None or (self.shard_tokens and self.shard_tokens + len(ids) > self.limit):
            self._open()
        assert self.files is not None
        data = self.sep + np.asarray(ids, dtype=self.dtype).tobytes()
        meta = (json.dumps({"id": passage.id, "title": passage.title}, ensure_ascii=False) + "\n").encode()
        self.files["offset"].write(np.uint64(self.pos["tokenized"]).tobytes())
        self.files["tokenized"].write(data)
        self.files["metaoff"].write(np.uint64(self.pos["metadata"]).tobytes())
        self.files["metadata"].write(meta)
        self.pos["tokenized"] += len(data)
        self.pos["metadata"] += len(meta)
        self.shard_tokens += len(ids)
        self.lengths.append(len(ids))

    def close(self) -> None:
        if self.files:
            for fh in self.files.values():
                fh.flush()
                os.fsync(fh.fileno())
                fh.close()
        self.files = None


def _build_suffix_arrays(directory: Path, token_dtype: str, shards: int, cpus: int, mem_gib: int) -> None:
    """Run the infini-gram indexer on pre-tokenised shards (it skips its own tokenising step)."""
    # The indexer splits a shard into `cpus` parts that overlap by 100,000 bytes; a part smaller than
    # that overlap yields duplicate suffixes and a corrupt table (found by the brute-force count tests),
    # so small shards are built with fewer processes.
    smallest = min((directory / f"tokenized.{s}").stat().st_size for s in range(shards))
    cpus = max(1, min(cpus, smallest // 200_000))
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ulimit = 1 << 20 if hard == resource.RLIM_INFINITY else min(hard, 1 << 20)
    cmd = [
        sys.executable, "-m", "infini_gram.indexing",
        "--data_dir", str(directory), "--save_dir", str(directory), "--temp_dir", str(directory),
        "--token_dtype", token_dtype, "--shards", str(shards), "--cpus", str(cpus),
        "--mem", str(mem_gib), "--ulimit", str(ulimit),
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or any(not (directory / f"table.{s}").is_file() for s in range(shards)):
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-6:]
        raise CorpusIndexError(f"the infini-gram indexer failed (exit {proc.returncode}): " + " | ".join(tail))


def _dir_size(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.iterdir() if f.is_file())


def _switch(root: Path, version: Path) -> None:
    """Point ``root/current`` at ``version`` atomically, then delete older versions."""
    tmp = root / f".current.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(version.name)
    os.replace(tmp, root / "current")
    for old in root.iterdir():
        if old.name.startswith("v-") and old.name != version.name and old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)


def build_index(
    corpus: str | Path,
    index: str | Path,
    *,
    tokenizer: str | IndexTokenizer = "gpt2",
    include_title: bool = True,
    shard_tokens: int | None = None,
    cpus: int | None = None,
    mem_gib: int | None = None,
    progress: Progress | None = None,
) -> IndexManifest:
    """Build an Infini-gram index of ``corpus`` under ``index`` and make it the live version.

    ``include_title`` indexes each passage as "title text" so that a co-occurrence with the
    passage's subject counts even where the text only says "he" or "the film". Returns the new
    version's manifest (sizes, token counts, build time).
    """
    if not infinigram_available():
        raise CorpusIndexError(
            "building a corpus-statistics index needs the infini-gram package (Linux/macOS, CPython 3.11-3.13): "
            "pip install 'gatedrag[corpus]'"
        )
    t0 = time.perf_counter()
    corpus, root = Path(corpus), user_path(index, CorpusIndexError).absolute()
    tok = load_index_tokenizer(tokenizer) if isinstance(tokenizer, str | Path) else tokenizer
    sha = corpus_sha256(corpus)
    total = _count_lines(corpus)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob("v-*.partial"):
        shutil.rmtree(stale, ignore_errors=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f") + f"-{os.getpid()}"
    partial = root / f"v-{stamp}.partial"
    partial.mkdir()
    width = np.dtype(_NP_DTYPE[tok.token_dtype]).itemsize
    writer = _ShardWriter(partial, tok.token_dtype, shard_tokens or default_shard_tokens(width))
    done = 0
    try:
        for batch in _batches(iter_corpus(corpus), _BATCH):
            texts = [f"{p.title}\n{p.text}" if include_title and p.title else p.text for p in batch]
            for ids, passage in zip(tok.encode_batch(texts), batch):
                writer.add(ids, passage)
            done += len(batch)
            if progress:
                progress("tokenize", done, max(total, done))
        writer.close()
        shards = writer.shard + 1
        if progress:
            progress("suffix-array", 0, shards)
        mem = mem_gib or max(1, int(0.6 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) >> 30)
        _build_suffix_arrays(partial, tok.token_dtype, shards, cpus or max(1, os.cpu_count() or 1), mem)
        if progress:
            progress("suffix-array", shards, shards)
        lengths = np.asarray(writer.lengths)
        manifest = IndexManifest(
            tokenizer=TokenizerInfo(
                name=tok.name, fingerprint=tok.fingerprint, vocab_size=tok.vocab_size, eos_token_id=tok.eos_token_id
            ),
            token_dtype=tok.token_dtype,
            corpus=str(corpus.resolve()),
            corpus_sha256=sha,
            include_title=include_title,
            documents=len(lengths),
            tokens=int(lengths.sum()),
            shards=shards,
            doc_tokens_p50=int(np.percentile(lengths, 50)),
            doc_tokens_p95=int(np.percentile(lengths, 95)),
            build_seconds=round(time.perf_counter() - t0, 3),
            size_bytes=_dir_size(partial),
            built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )
        write_manifest(partial, manifest)
        version = root / partial.name.removesuffix(".partial")
        partial.rename(version)
    except BaseException:
        writer.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    _switch(root, version)
    return read_manifest(root)[1]


__all__ = ["Progress", "build_index", "default_corpus_index_dir", "default_shard_tokens", "infinigram_available"]
