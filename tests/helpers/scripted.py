"""A scripted language model for controller tests: it writes fixed sentences, one script without
passages in the prompt and one with, each token with a set probability; P(True) is looked up."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

from gatedrag.lm.base import ModelCapabilities, NextToken
from gatedrag.types import DecodeOutcome, Sentence, TokenAlternative, TokenStep


def sentence(text: str, p: float) -> Sentence:
    words = text.split(" ")
    tokens = [
        TokenStep(token_id=i, text=(" " if i else "") + w, logprob=math.log(p), entropy=1.0)
        for i, w in enumerate(words)
    ]
    return Sentence(text=text, tokens=tokens)


class ScriptedSession:
    def __init__(self, lm: ScriptedLM):
        self.lm = lm
        self.rows: dict[Hashable, tuple[list[tuple[str, float]], int]] = {}

    def start(self, key, prompt, *, cached_prefix="", continuation=(), twin=None) -> int:
        self.lm.started.append(prompt)
        if "Standalone question:" in prompt and self.lm.rewrite is not None:  # a chat's condense step
            script = [(self.lm.rewrite, 0.9)]
        else:
            script = self.lm.with_context if "Context:" in prompt else self.lm.closed_book
        self.rows[key] = (script, len(continuation))
        return len(prompt.split())

    def decode(
        self,
        keys,
        *,
        on_sentence,
        budgets,
        max_sentence_tokens=64,
        stop_strings=(),
        regroup=True,
        streamer=None,
        split_sentences=True,
        sampling=None,
    ) -> dict[Hashable, DecodeOutcome]:
        out = {}
        if sampling is not None:  # sampled versions of the final answer: the scripted ones, in turn
            for n, key in enumerate(keys):
                s = sentence(f"So the answer is {self.lm.sampled[n % len(self.lm.sampled)]}.", 0.5)
                verdict = on_sentence(key, s)
                out[key] = DecodeOutcome(sentences=[s], finish="done" if verdict == "done" else "eos")
            return out
        for key in keys:
            script, pos = self.rows[key]
            done: list[Sentence] = []
            finish = "eos"
            while pos < len(script):
                s = sentence(*script[pos])
                done.append(s)
                pos += 1
                verdict = on_sentence(key, s)
                if verdict in ("act", "done", "pause"):
                    finish = "paused" if verdict == "pause" else verdict
                    break
            self.rows[key] = (script, pos)
            out[key] = DecodeOutcome(sentences=done, finish=finish, new_tokens=sum(len(s.tokens) for s in done))
        return out

    def close(self, key) -> None:
        self.rows.pop(key, None)


class ScriptedLM:
    """``closed_book`` / ``with_context``: (sentence, token probability) pairs; ``p_true``: the
    P(Yes) of a proposed answer (default 0.5); ``sampled``: the answers sampled rows state, in turn;
    ``fits``: the token probability of a scored continuation after a passage of that title (default 0.5);
    ``rewrite``: what a chat's condense step writes."""

    name = "scripted"
    context_length = 100_000
    capabilities = ModelCapabilities()

    def __init__(
        self,
        closed_book,
        with_context,
        p_true: Mapping[str, float] | None = None,
        fail_verify=False,
        sampled=(),
        fits=None,
        rewrite: str | None = None,
    ):
        self.rewrite = rewrite
        self.sampled = list(sampled) or ["unknown"]
        self.fits = dict(fits or {})
        self.closed_book = closed_book
        self.with_context = with_context
        self.p_true = dict(p_true or {})
        self.fail_verify = fail_verify
        self.scored: list[str] = []
        self.started: list[str] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def open_session(self) -> ScriptedSession:
        return ScriptedSession(self)

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        if self.fail_verify:
            raise RuntimeError("scoring backend down")
        out = []
        for prompt, continuation in zip(prompts, continuations):
            self.scored.append(prompt)
            if "Proposed answer: " not in prompt:  # a continuation after passages: how well each fits
                p = next((v for title, v in self.fits.items() if f"{title}:" in prompt), 0.5)
                out.append(
                    [
                        TokenStep(token_id=i, text=w, logprob=math.log(p), entropy=1.0)
                        for i, w in enumerate(continuation.split(" "))
                    ]
                )
                continue
            answer = prompt.split("Proposed answer: ")[1].split("\n")[0]
            p = self.p_true.get(answer, 0.5)
            no = TokenAlternative(token_id=2, text=" No", logprob=math.log(1 - p))
            out.append([TokenStep(token_id=1, text=" Yes", logprob=math.log(p), entropy=0.7, top=[no])])
        return out

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        return [NextToken(entropy=1.0, top=[]) for _ in prompts]
