"""DRAGIN's attention-weighted entropy (RIND) and its attention-based query (QFS), anchors §3.

RIND scores each word of a sentence by how uncertain the model was when writing it and how much
the text that follows relies on it::

    score_i = H_i * a_i / sum_{j in sentence} a_j * n_words

* ``H_i``: mean over the word's sub-tokens of the full next-token entropy (nats);
* ``a_i``: sum over its sub-tokens of the maximum last-layer attention (mean over heads) that any
  later token of the current decoding call pays to it;
* ``n_words``: words in the sentence, so that a uniform sentence scores ``H_i``.

The signal's value is the highest word score (unitless, higher = more uncertain); it fires above
``threshold``. With ``stopwords="paper"`` function words score 0 before the test (the paper's
``s_i``); with ``"code"`` (what the released code does) any word can fire and the content-word
filter only chooses the *hit* words used for the query.

Differences from DRAGIN, all forced by gating sentence by sentence while decoding: attention is
measured when the sentence ends, so ``a_i`` is the maximum over the later tokens of the call *up to
the end of this sentence*, not over sentences the model had not yet written; spaCy POS tags are
approximated by :mod:`gatedrag.signals.words`.

QFS (:meth:`RINDSignal.formulate_query`) re-reads question + answer so far + the sentence, takes
the attention rows of the hit words' tokens (first-token sink excluded, renormalised, averaged),
sums them per word, and returns the ``query_words`` content words preceding the first hit word with
the highest (``query_order="highest"``, paper) or lowest (``"lowest"``, released code) attention,
in text order.

Example (with a model that provides ``attention()``, e.g. :class:`gatedrag.lm.hf.HFLanguageModel`)::

    from gatedrag.signals.attention import RINDSignal
    from gatedrag.signals.base import SentenceContext
    rind = RINDSignal(threshold=1.2)
    value = rind.evaluate(sentence.tokens, SentenceContext(question=q, answer_ids=ids, model=lm))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from gatedrag.signals.base import AttentionModel, Family, Need, SentenceContext, SignalBase, span_of
from gatedrag.signals.words import clean_word, group_words, is_content_word
from gatedrag.types import SignalValue, TokenStep

MAX_ATTENTION_TOKENS = 1024
"""Longest token sequence re-read for attention (older tokens are dropped from the left)."""


def _model(context: SentenceContext | None) -> AttentionModel | None:
    """The context's model when it declares attention among its capabilities."""
    model = context.model if context is not None else None
    return model if model is not None and model.capabilities.attention else None


def word_scores(
    texts: Sequence[str], entropies: Sequence[float], max_attention: Sequence[float]
) -> tuple[list[list[int]], np.ndarray]:
    """Group a sentence's tokens into words and return ``(words, scores)`` with RIND's
    ``score_i = H_i * a_i / sum(a) * n_words`` (see the module doc)."""
    words = group_words(texts)
    ent = np.array([np.mean([entropies[i] for i in w]) for w in words], dtype=np.float64)
    att = np.array([np.sum([max_attention[i] for i in w]) for w in words], dtype=np.float64)
    total = att.sum()
    norm = att / total if total > 0 else np.full(len(words), 1.0 / max(1, len(words)))
    return words, ent * norm * len(words)


class RINDSignal(SignalBase):
    """DRAGIN's RIND trigger (see the module doc); needs attention from the model."""

    name: ClassVar[str] = "rind"
    family: ClassVar[Family] = "attention"
    unit: ClassVar[str] = "entropy (nats) x attention share x words"
    needs: ClassVar[frozenset[Need]] = frozenset({"logprobs", "context", "attention"})

    def __init__(
        self,
        threshold: float = 1.2,
        *,
        stopwords: Literal["code", "paper"] = "code",
        query_words: int = 35,
        query_order: Literal["highest", "lowest"] = "highest",
        act: bool = True,
    ):
        if threshold < 0:
            raise ValueError(f"RIND threshold must be >= 0, got {threshold}")
        if query_words < 1:
            raise ValueError(f"RIND query_words must be >= 1, got {query_words}")
        self.threshold, self.stopwords, self.act = threshold, stopwords, act
        self.query_words, self.query_order = query_words, query_order

    def _scores(
        self, tokens: Sequence[TokenStep], context: SentenceContext | None
    ) -> tuple[list[list[int]], np.ndarray, np.ndarray] | str:
        model = _model(context)
        if model is None:
            return "the model exposes no attention: RIND not computed"
        assert context is not None
        ids = list(context.answer_ids[context.segment_start :]) + [t.token_id for t in tokens]
        ids = ids[-MAX_ATTENTION_TOKENS:]
        try:
            att = np.asarray(model.attention(ids), dtype=np.float64)
        except Exception as err:  # a failing backend degrades the signal, never the answer
            return f"attention failed: {type(err).__name__}: {err}"
        a_max = att.max(axis=0)[-len(tokens) :]
        words, scores = word_scores([t.text for t in tokens], [t.entropy for t in tokens], a_max.tolist())
        content = np.array([is_content_word("".join(tokens[i].text for i in w)) for w in words])
        return words, scores, content

    def evaluate(self, tokens: Sequence[TokenStep], context: SentenceContext | None = None) -> SignalValue:
        if not tokens:
            return SignalValue(name=self.name, value=0.0, threshold=self.threshold)
        got = self._scores(tokens, context)
        if isinstance(got, str):
            return SignalValue(name=self.name, value=0.0, threshold=self.threshold, note=got)
        words, scores, content = got
        eligible = scores * content if self.stopwords == "paper" else scores
        best = int(np.argmax(eligible))
        value = float(eligible[best])
        fired = value > self.threshold
        hits = [w for w, s, c in zip(words, eligible, content) if s > self.threshold and c]
        if fired and not hits:  # only function words fired (code mode): blame the best content word
            ranked = [w for _, w, c in sorted(zip(scores, words, content), key=lambda x: -x[0]) if c]
            hits = ranked[:1]
        flagged = sorted(i for w in (hits if fired else [words[best]]) for i in w)
        return SignalValue(
            name=self.name,
            value=value,
            threshold=self.threshold,
            fired=fired,
            span=span_of(tokens, flagged),
            token_indices=flagged,
            details={
                "max_word_score": value,
                "words": float(len(words)),
                "entropy_nats_at_max": float(np.mean([tokens[i].entropy for i in words[best]])),
            },
        )

    def formulate_queries(self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext) -> list[str]:
        """DRAGIN's QFS query (see the module doc); none when attention is unavailable (the
        whole sentence is the query then: RIND masks nothing)."""
        query = self._qfs(tokens, value, context)
        return [query] if query else []

    def _qfs(self, tokens: Sequence[TokenStep], value: SignalValue, context: SentenceContext) -> str | None:
        model = _model(context)
        hit_tokens = sorted(set(value.token_indices))
        if model is None or not hit_tokens:
            return None
        q_ids = model.encode(context.question.strip()) if context.question.strip() else []
        ids = q_ids + list(context.answer_ids) + [t.token_id for t in tokens]
        offset = len(ids) - len(tokens)
        if len(ids) > MAX_ATTENTION_TOKENS:
            cut = len(ids) - MAX_ATTENTION_TOKENS
            ids, offset = ids[cut:], offset - cut
        try:
            att = np.asarray(model.attention(ids), dtype=np.float64)
        except Exception:
            return None
        rows = []
        for i in hit_tokens:
            p = offset + i
            row = att[p].copy()
            row[0] = 0.0  # the first token is an attention sink
            total = row.sum()
            rows.append(row / total if total > 0 else row)
        weight = np.mean(rows, axis=0)
        texts = [model.decode([t]) for t in ids]
        first_hit = offset + hit_tokens[0]
        candidates = []
        for w in group_words(texts):
            if w[-1] >= first_hit:
                break
            word = clean_word(model.decode([ids[i] for i in w]))
            if is_content_word(word):
                candidates.append((float(weight[w].sum()), w[0], word))
        if not candidates:
            return None
        ranked = sorted(candidates, key=lambda c: c[0], reverse=self.query_order == "highest")
        chosen = sorted(ranked[: self.query_words], key=lambda c: c[1])
        return " ".join(c[2] for c in chosen)


__all__ = ["MAX_ATTENTION_TOKENS", "RINDSignal", "word_scores"]
