"""Assembling, verifying and caching split model files, with fake part packages on sys.path."""

import hashlib
import sys

import pytest

from gatedrag.errors import ContextLengthError, ModelIntegrityError, ModelNotInstalledError
from gatedrag.lm.packaged import (
    ModelPart,
    PackagedModel,
    assemble_gguf,
    assembled_path,
    check_gguf_file,
    converted_dir,
    ensure_assembled,
    ensure_converted,
)

PAYLOAD = b"GGUF" + bytes(range(256)) * 40


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """A 'model' split in three installed packages gatedrag_fakepart1..3."""
    site = tmp_path / "site"
    chunks = [PAYLOAD[:3000], PAYLOAD[3000:7000], PAYLOAD[7000:]]
    parts = []
    for i, chunk in enumerate(chunks, 1):
        pkg = site / f"gatedrag_fakepart{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        parts.append(ModelPart(f"gatedrag-fakepart{i}", f"gatedrag_fakepart{i}", f"data/part{i:02d}.bin"))
    monkeypatch.syspath_prepend(str(site))
    for i in range(1, 4):
        sys.modules.pop(f"gatedrag_fakepart{i}", None)
    return PackagedModel(
        name="fake",
        gguf_name="fake.gguf",
        size=len(PAYLOAD),
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        parts=tuple(parts),
        licence="test",
    ), site


def test_assembles_and_verifies(fake_model, tmp_path):
    model, _ = fake_model
    out = assemble_gguf(model, tmp_path / "out" / "fake.gguf")
    assert out.read_bytes() == PAYLOAD
    check_gguf_file(out, size=model.size, sha256=model.sha256)
    assert not list(out.parent.glob("*.partial-*"))


def test_missing_part_names_the_pip_command(fake_model):
    model, site = fake_model
    (site / "gatedrag_fakepart2" / "data" / "part02.bin").unlink()
    with pytest.raises(ModelNotInstalledError, match=r"gatedrag-fakepart2.*pip install"):
        assemble_gguf(model, site / "x.gguf")


def test_corrupt_or_partial_parts_are_refused(fake_model, tmp_path):
    model, site = fake_model
    part = site / "gatedrag_fakepart3" / "data" / "part03.bin"
    part.write_bytes(part.read_bytes()[:-10])
    with pytest.raises(ModelIntegrityError, match="add up to"):
        assemble_gguf(model, tmp_path / "a.gguf")
    part.write_bytes(PAYLOAD[7000:-1] + b"\x00")  # right size, wrong bytes
    with pytest.raises(ModelIntegrityError, match="sha256"):
        assemble_gguf(model, tmp_path / "b.gguf")
    assert not (tmp_path / "b.gguf").exists()


def test_check_gguf_file(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"NOPE" + b"\x00" * 10)
    with pytest.raises(ModelIntegrityError, match="not a GGUF"):
        check_gguf_file(f)
    f.write_bytes(PAYLOAD[:100])
    with pytest.raises(ModelIntegrityError, match="partial or corrupt"):
        check_gguf_file(f, size=len(PAYLOAD))


def test_converted_cache_is_built_once_and_rebuilt_when_damaged(fake_model, tmp_path):
    model, _ = fake_model
    calls = []

    def convert(gguf, out):
        calls.append(gguf.read_bytes() == PAYLOAD)
        (out / "model.safetensors").write_bytes(b"weights" * 100)
        (out / "config.json").write_text("{}")

    d = ensure_converted(model, "bfloat16", convert, cache_dir=tmp_path)
    assert d == converted_dir(model, "bfloat16", tmp_path) and calls == [True]
    assert ensure_converted(model, "bfloat16", convert, cache_dir=tmp_path) == d and len(calls) == 1
    assert not (tmp_path / "gguf" / "fake.gguf").exists()  # the safetensors copy replaces the GGUF
    (d / "model.safetensors").write_bytes(b"trunc")  # a damaged cache is detected by size and rebuilt
    ensure_converted(model, "bfloat16", convert, cache_dir=tmp_path)
    assert len(calls) == 2 and (d / "model.safetensors").stat().st_size == 700


def test_assembled_gguf_is_kept_verified_and_rebuilt_when_damaged(fake_model, tmp_path):
    """The llama.cpp backend reads the assembled file itself: assembled once, checked by a stamp."""
    model, site = fake_model
    path = ensure_assembled(model, cache_dir=tmp_path)
    assert path == assembled_path(model, tmp_path) and path.read_bytes() == PAYLOAD
    part = site / "gatedrag_fakepart1" / "data" / "part01.bin"
    part.unlink()  # a later call only stats the verified file: the parts are not read again
    assert ensure_assembled(model, cache_dir=tmp_path) == path
    path.write_bytes(PAYLOAD[:-1] + b"\x01")  # damaged (same size, new mtime): assembled again
    with pytest.raises(ModelNotInstalledError):
        ensure_assembled(model, cache_dir=tmp_path)
    part.write_bytes(PAYLOAD[:3000])
    assert ensure_assembled(model, cache_dir=tmp_path).read_bytes() == PAYLOAD
    ensure_converted(model, "bfloat16", lambda g, o: (o / "w").write_bytes(b"x"), cache_dir=tmp_path)
    assert path.read_bytes() == PAYLOAD  # converting for transformers leaves it for llama.cpp


def test_failed_conversion_leaves_no_cache(fake_model, tmp_path):
    model, _ = fake_model

    def boom(gguf, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        ensure_converted(model, "float32", boom, cache_dir=tmp_path)
    assert not converted_dir(model, "float32", tmp_path).exists()
    assert not list((tmp_path / "models").glob("*.building-*"))


def test_question_longer_than_the_context_is_a_typed_error(tiny_lm):
    from gatedrag.pipeline import GatedRAG

    with pytest.raises(ContextLengthError, match="context"):
        GatedRAG(tiny_lm, None).ask("why " * 2000)
