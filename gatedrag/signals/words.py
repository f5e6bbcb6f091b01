"""Word grouping of sub-word tokens and a content-word test.

DRAGIN merges sub-word tokens into words (a new word starts at a token that begins with a space)
and keeps "real words" with spaCy's part-of-speech tags NOUN, ADJ, VERB, PROPN and NUM.
:func:`is_content_word` approximates the tagger with a list of English function words
(determiners, pronouns, prepositions, conjunctions, auxiliaries and common adverbs), so that RIND
runs on every sentence while decoding without a tagger call: a word is content if it has a letter
or digit and is not one of them. Auxiliary verbs ("is", "was", "has") count as function words, which matches spaCy's AUX tag.

Example:
    >>> from gatedrag.signals.words import is_content_word
    >>> [w for w in "The film was directed by John Farrow in 1957 .".split() if is_content_word(w)]
    ['film', 'directed', 'John', 'Farrow', '1957']
"""

from __future__ import annotations

import re
from collections.abc import Sequence

FUNCTION_WORDS = frozenset(
    """
a an the this that these those some any each every either neither no all both half such what which
whatever whichever whose who whom whoever i me my mine myself we us our ours ourselves you your
yours yourself yourselves he him his himself she her hers herself it its itself they them their
theirs themselves one ones oneself somebody someone something anybody anyone anything nobody
nothing everybody everyone everything about above across after against along amid among around as
at before behind below beneath beside besides between beyond by despite down during except for from
in inside into like near of off on onto out outside over past per since than through throughout
till to toward towards under underneath unlike until up upon via with within without and but or nor
so yet if then else because although though while whereas whether unless once where when whenever
wherever why how is am are was were be been being do does did doing done have has had having will
would shall should can could may might must ought 's 're 've 'd 'll n't not also too very just only
even still already again ever never always often sometimes here there now thus therefore hence
however moreover furthermore otherwise instead rather quite almost enough much many more most less
least few fewer other another same own well yes let lets
""".split()
)

_HAS_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_STRIP = re.compile(r"^[\W_]+|[\W_]+$", re.UNICODE)


def clean_word(text: str) -> str:
    """The word without surrounding punctuation and whitespace."""
    return _STRIP.sub("", text.strip())


def is_content_word(text: str) -> bool:
    """Whether a word carries content (see the module doc for how this approximates POS tags)."""
    word = clean_word(text)
    return bool(word) and bool(_HAS_ALNUM.search(word)) and word.lower() not in FUNCTION_WORDS


def group_words(texts: Sequence[str]) -> list[list[int]]:
    """Group token indices into words: a token starting with whitespace (or following a newline)
    starts a new word; punctuation and sub-word pieces join the word before them."""
    groups: list[list[int]] = []
    for i, t in enumerate(texts):
        starts = not groups or t[:1].isspace() or texts[i - 1].endswith("\n")
        if starts:
            groups.append([i])
        else:
            groups[-1].append(i)
    return groups


__all__ = ["FUNCTION_WORDS", "clean_word", "group_words", "is_content_word"]
