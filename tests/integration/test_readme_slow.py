"""The README's Python examples, run as written (the default model; slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def blocks_with(marker: str) -> list[str]:
    return [b for b in re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S) if marker in b]


@pytest.mark.slow
@pytest.mark.model
def test_the_langchain_example_runs_as_written(capsys):
    (code,) = blocks_with("GatedRAGRunnable")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["message"].response_metadata["answer"] and len(scope["docs"]) == 5
    assert capsys.readouterr().out.strip()  # the streamed sentences were printed
