"""The gold supporting passages of a question, found in the dataset's retrieval corpus.

HotpotQA and 2WikiMultihopQA name them by page title (``supporting_facts: [[title, sentence]]``;
their corpora hold one passage per title), MuSiQue marks them ``is_supporting`` among each
question's paragraphs (matched to the pooled corpus by exact text, then by title).

Example:
    >>> from gatedrag.evals.datasets import Example
    >>> from gatedrag.types import Passage
    >>> gold = GoldPassages([Passage(id="a#0", title="A", text="x"), Passage(id="b#0", title="B", text="y")])
    >>> ex = Example(id="1", dataset="hotpotqa", question="?", answers=["x"],
    ...              fields={"supporting_facts": [["B", 0], ["B", 1]]})
    >>> gold.ids(ex)
    ['b#0']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gatedrag.types import Hit, Passage

from .datasets import Example


class GoldPassages:
    """Looks up the supporting passages of examples in one corpus."""

    def __init__(self, passages: Iterable[Passage]):
        self.passages: dict[str, Passage] = {}
        self._by_title: dict[str, list[str]] = {}
        self._by_text: dict[str, str] = {}
        for p in passages:
            self.passages[p.id] = p
            self._by_title.setdefault(p.title, []).append(p.id)
            self._by_text.setdefault(p.text.strip(), p.id)

    def ids(self, example: Example) -> list[str]:
        """Ids of the corpus passages that support ``example``, in the dataset's order, without
        repeats (empty when the dataset marks none or the corpus lacks them)."""
        found: list[str] = []
        for title, text in _supporting(example):
            pid = self._by_text.get(text.strip()) if text else None
            ids = [pid] if pid else self._by_title.get(title, [])
            found += [i for i in ids if i not in found]
        return found

    def passages_of(self, example: Example) -> list[Passage]:
        return [self.passages[i] for i in self.ids(example)]


def _supporting(example: Example) -> list[tuple[str, str]]:
    fields = example.fields
    if fields.get("supporting_paragraphs"):
        return [(p.get("title", ""), p.get("text", "")) for p in fields["supporting_paragraphs"]]
    titles = [str(f[0]) for f in fields.get("supporting_facts") or [] if f]
    return [(t, "") for t in dict.fromkeys(titles)]


def recall(hits: Sequence[Hit], gold: Sequence[str], k: int) -> tuple[float, bool]:
    """Of the gold passage ids, the fraction among the first ``k`` hits, and whether any is.

    >>> from gatedrag.types import Passage
    >>> hits = [Hit(passage=Passage(id=i, text=i), score=1.0, rank=r) for r, i in enumerate("abc", 1)]
    >>> recall(hits, ["c", "z"], 3), recall(hits, ["c"], 2)
    ((0.5, True), (0.0, False))
    """
    if not gold:
        return 0.0, False
    top = {h.passage.id for h in hits[:k]}
    n = sum(g in top for g in gold)
    return n / len(gold), n > 0


__all__ = ["GoldPassages", "recall"]
