"""Prompt templates stored as YAML data files (few-shot chain-of-thought demos).

The prompt is laid out so that the part shared by every question (instruction and demos) comes
first: the language model encodes it once and reuses its cache for every question.

Example:
    >>> from gatedrag.prompts import PromptTemplate
    >>> t = PromptTemplate.load("cot")
    >>> prefix, prompt = t.render("Who wrote Hamlet?")
    >>> prompt.startswith(prefix) and prompt.endswith("Answer:")
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gatedrag.errors import ConfigError
from gatedrag.types import Hit, Passage


class DemoPassage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = ""
    text: str


class Demo(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str
    answer: str
    passages: list[DemoPassage] = Field(default_factory=list)
    source_id: str | None = None
    """Id of the benchmark question the demo was written from (evaluations skip it)."""


class PromptTemplate(BaseModel):
    """A few-shot template: instruction, demos, and how passages and questions are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    instruction: str
    passage: str = "[{rank}] {title}: {text}"
    context_header: str = "Context:"
    question: str = "Question: {question}"
    answer_prefix: str = "Answer:"
    demos: list[Demo] = Field(default_factory=list)

    @property
    def source_ids(self) -> set[str]:
        """Ids of benchmark questions used as demos (to keep them out of evaluation)."""
        return {d.source_id for d in self.demos if d.source_id}

    @classmethod
    def load(cls, name_or_path: str | Path) -> PromptTemplate:
        """A shipped template by name (``cot``) or a YAML file."""
        path = Path(name_or_path)
        if path.suffix.lower() not in {".yaml", ".yml"}:
            shipped = files("gatedrag.prompts").joinpath(f"{name_or_path}.yaml")
            if not shipped.is_file():
                raise ConfigError(f"no prompt template named {name_or_path!r}; give a shipped name or a .yaml file")
            raw = shipped.read_text(encoding="utf-8")
        else:
            try:
                raw = path.read_text(encoding="utf-8")
            except OSError as err:
                raise ConfigError(f"cannot read prompt template {path}: {err.strerror or err}") from None
        try:
            return cls.model_validate(yaml.safe_load(raw))
        except (yaml.YAMLError, ValidationError) as err:
            raise ConfigError(f"invalid prompt template {name_or_path}: {err}") from None

    def _context(self, passages: Sequence[Passage]) -> str:
        lines = [self.context_header]
        lines += [self.passage.format(rank=i, title=p.title, text=p.text) for i, p in enumerate(passages, 1)]
        return "\n".join(lines)

    def prefix(self, *, with_passages: bool) -> str:
        """Instruction and demos: the part shared by every question (ends with a blank line)."""
        blocks = [self.instruction.strip()]
        for d in self.demos:
            parts = []
            if with_passages and d.passages:
                parts.append(
                    self._context([Passage(id=str(i), title=p.title, text=p.text) for i, p in enumerate(d.passages)])
                )
            parts += [self.question.format(question=d.question), f"{self.answer_prefix} {d.answer}"]
            blocks.append("\n".join(parts))
        return "\n\n".join(blocks) + "\n\n"

    def render(self, question: str, passages: Sequence[Hit | Passage] | None = None) -> tuple[str, str]:
        """``(shared_prefix, full_prompt)`` for a question, with passages when given."""
        plain = [h.passage if isinstance(h, Hit) else h for h in passages or []]
        prefix = self.prefix(with_passages=passages is not None)
        parts = [self._context(plain)] if plain else []
        parts += [self.question.format(question=question.strip()), self.answer_prefix]
        return prefix, prefix + "\n".join(parts)


def numbered_passages(passages: Sequence[Passage], max_words: int) -> list[str]:
    """Passages as the scoring prompts list them: ``[i] title: text`` (each cut to ``max_words`` words).

    >>> numbered_passages([Passage(id="1", title="Paris", text="Paris is the capital of France.")], 3)
    ['[1] Paris: Paris is the']
    """
    return [f"[{i}] {p.title}: {' '.join(p.text.split()[:max_words])}" for i, p in enumerate(passages, 1)]


__all__ = ["Demo", "DemoPassage", "PromptTemplate", "numbered_passages"]
