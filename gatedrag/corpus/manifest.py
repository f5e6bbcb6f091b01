"""What an index directory holds, and how to find its live version.

Layout of an index built by :func:`gatedrag.corpus.build.build_index`::

    INDEX/
      current -> v-20261123T104501-1234     (symlink, replaced atomically by each build)
      v-20261123T104501-1234/
        gatedrag-index.json                 (this manifest, written last)
        tokenized.0  table.0  offset.0  metadata.0  metaoff.0   (one set per shard)

A build killed midway leaves a ``*.partial`` directory and ``current`` untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatedrag.errors import CorpusIndexError
from gatedrag.paths import user_path

MANIFEST = "gatedrag-index.json"
FORMAT = "gatedrag-infinigram/1"


class TokenizerInfo(BaseModel):
    """The tokenizer an index was built with (``fingerprint`` detects a different one at query time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    fingerprint: str
    vocab_size: int = Field(ge=1)
    eos_token_id: int = Field(ge=0)


class IndexManifest(BaseModel):
    """Facts about one built Infini-gram index (JSON beside the index files)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: str = FORMAT
    tokenizer: TokenizerInfo
    token_dtype: str
    corpus: str
    corpus_sha256: str
    include_title: bool
    documents: int = Field(ge=0)
    tokens: int = Field(ge=0)
    """Corpus tokens, document separators excluded."""
    shards: int = Field(ge=1)
    doc_tokens_p50: int = Field(ge=0)
    doc_tokens_p95: int = Field(ge=0)
    build_seconds: float = Field(ge=0)
    size_bytes: int = Field(ge=0)
    built_at: str


def write_manifest(directory: Path, manifest: IndexManifest) -> None:
    path = directory / MANIFEST
    tmp = path.with_suffix(".tmp")
    tmp.write_text(manifest.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def resolve_index(index: str | Path) -> Path:
    """The directory holding the live version of ``index`` (follows ``current``)."""
    root = user_path(index, CorpusIndexError)
    if not root.exists():
        raise CorpusIndexError(f"corpus index not found: {root} (build one with: gatedrag index build CORPUS.jsonl)")
    if (root / "current").exists():
        return (root / "current").resolve()
    if (root / MANIFEST).is_file():
        return root.resolve()
    raise CorpusIndexError(f"{root} is not a gatedrag corpus index (no 'current' version and no {MANIFEST})")


def read_manifest(index: str | Path) -> tuple[Path, IndexManifest]:
    """The live version directory of ``index`` and its manifest."""
    directory = resolve_index(index)
    path = directory / MANIFEST
    try:
        manifest = IndexManifest.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CorpusIndexError(f"{directory} has no {MANIFEST}: the build did not finish; rebuild it") from None
    except (ValidationError, json.JSONDecodeError) as err:
        raise CorpusIndexError(f"unreadable index manifest {path}: {err}") from None
    if manifest.format != FORMAT:
        raise CorpusIndexError(f"{path} has format {manifest.format!r}; this gatedrag reads {FORMAT!r}: rebuild it")
    missing = [
        f"{stem}.{s}"
        for s in range(manifest.shards)
        for stem in ("tokenized", "table", "offset")
        if not (directory / f"{stem}.{s}").is_file()
    ]
    if missing:
        raise CorpusIndexError(f"index {directory} is incomplete (missing {', '.join(missing[:4])}): rebuild it")
    return directory, manifest


__all__ = ["MANIFEST", "IndexManifest", "TokenizerInfo", "read_manifest", "resolve_index", "write_manifest"]
