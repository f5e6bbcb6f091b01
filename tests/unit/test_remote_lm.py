"""The remote-completion backend: rounds of requests cut into sentences, continued from the text
so far, stopped by the hook, the budget or the API; token signals unavailable without logprobs."""

from __future__ import annotations

import math

import pytest

from gatedrag.config import GateConfig, PipelineConfig, TokenRAGRule
from gatedrag.errors import BackendError, InputError
from gatedrag.gate.evaluator import NO_LOGPROBS
from gatedrag.lm.remote import CompletionRequest, RemoteCompletion, RemoteLanguageModel, RemoteToken, word_pieces
from gatedrag.pipeline import GatedRAG
from gatedrag.retrieval.bm25 import BM25Retriever
from gatedrag.types import Passage

WORDS = "Paris is big. It is the capital of France. So the answer is Paris.".split(" ")


class Scripted:
    """Writes WORDS from where the answer so far ends, ``per_call`` tokens a request."""

    name = "scripted-api"

    def __init__(self, per_call=4, logprobs=True, p=0.9):
        self.per_call, self.logprobs, self.p = per_call, logprobs, p
        self.requests: list[CompletionRequest] = []

    def complete(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            done = len(r.answer.split())
            words = WORDS[done : done + min(self.per_call, r.max_tokens)]
            texts = [(" " if done + i else "") + w for i, w in enumerate(words)]
            tokens = [
                RemoteToken(text=t, logprob=math.log(self.p), top=[(t, math.log(self.p)), ("x", math.log(0.05))])
                for t in texts
            ]
            end = done + len(words) >= len(WORDS)
            out.append(
                RemoteCompletion(
                    text="".join(texts), tokens=tokens if self.logprobs else [], finish="stop" if end else "length"
                )
            )
        return out


def decode(lm, hook=lambda k, s: "continue", budget=100, **kw):
    s = lm.open_session()
    s.start("q", "Q: where?\nA:")
    return s.decode(["q"], on_sentence=hook, budgets={"q": budget}, **kw)["q"], s


def test_rounds_are_cut_into_sentences_and_continued_from_the_text_so_far():
    api = Scripted(per_call=4)
    out, _ = decode(RemoteLanguageModel(api))
    assert [s.text for s in out.sentences] == [
        "Paris is big.",
        "It is the capital of France.",
        "So the answer is Paris.",
    ]
    assert out.finish == "eos" and out.new_tokens == len(WORDS) + 1
    assert [r.answer.count(" ") for r in api.requests[1:3]] == [3, 7]  # each request continues the text written
    step = out.sentences[0].tokens[0]
    assert step.logprob == pytest.approx(math.log(0.9)) and step.entropy > 0 and step.top[0].text == "Paris"


def test_the_hook_budget_and_stop_strings_end_a_row():
    lm = RemoteLanguageModel(Scripted(per_call=20))
    acted, _ = decode(lm, hook=lambda k, s: "act")
    assert [s.text for s in acted.sentences] == ["Paris is big."] and acted.finish == "act"  # the rest is discarded
    short, _ = decode(lm, budget=5)
    assert short.finish == "budget" and short.new_tokens == 5
    stopped, _ = decode(lm, stop_strings=["capital"])
    assert stopped.finish == "stop" and stopped.sentences[-1].text == "It is the"


def test_a_restarted_row_continues_after_its_kept_sentences():
    api = Scripted(per_call=20)
    lm = RemoteLanguageModel(api)
    first, s = decode(lm, hook=lambda k, x: "act")
    s.start("q", "Q: where?\nA:", continuation=first.sentences)
    rest = s.decode(["q"], on_sentence=lambda k, x: "continue", budgets={"q": 100})["q"]
    assert api.requests[-1].answer == "Paris is big." and rest.sentences[0].text == "It is the capital of France."


def test_without_logprobs_the_token_signals_are_unavailable_and_traced():
    lm = RemoteLanguageModel(Scripted(logprobs=False), logprobs=False)
    out, _ = decode(lm)
    assert [t.text for t in out.sentences[0].tokens] == ["Paris", " is", " big."]
    assert lm.capabilities.logprobs is False and lm.capabilities.top_k == 0
    retriever = BM25Retriever.build([Passage(id="p", title="Paris", text="Paris is the capital of France.")])
    cfg = PipelineConfig(gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]))
    answer = GatedRAG(lm, retriever, cfg).ask("Where is Paris?")
    notes = {v.note for s in answer.steps if s.kind == "sentence" for v in s.signals}
    assert notes == {NO_LOGPROBS} and answer.counts.retrievals == 0 and answer.answer == "Paris"


def test_logprobs_declared_but_missing_and_bad_completers_are_errors():
    with pytest.raises(BackendError, match="no token log-probabilities"):
        decode(RemoteLanguageModel(Scripted(logprobs=False)))
    with pytest.raises(InputError):
        RemoteLanguageModel(object())  # type: ignore[arg-type]
    with pytest.raises(BackendError):
        RemoteLanguageModel(Scripted()).score(["a"], ["b"])


def test_the_pipeline_retrieves_on_remote_token_signals():
    lm = RemoteLanguageModel(Scripted(p=0.3))
    retriever = BM25Retriever.build([Passage(id="p", title="Paris", text="Paris is the capital of France.")])
    cfg = PipelineConfig(gate=GateConfig(rules=[TokenRAGRule(threshold=0.5)]), policy={"max_retrievals": 1})
    answer = GatedRAG(lm, retriever, cfg).ask("Where is Paris?")
    assert answer.counts.retrievals == 1 and answer.answer == "Paris" and not answer.degraded
    nt = lm.next_token(["Q:"])[0]
    assert nt.top and nt.entropy > 0


def test_word_pieces_keep_the_whitespace():
    assert "".join(t.text for t in word_pieces("a  b\nc ")) == "a  b\nc "


class Failing(Scripted):
    def __init__(self, after: int):
        super().__init__(per_call=4)
        self.after = after

    def complete(self, requests):
        if len(self.requests) >= self.after:
            raise BackendError("server unreachable after 3 retries")
        return super().complete(requests)


def test_a_failing_server_ends_the_answer_with_what_it_has_labelled():
    answer = GatedRAG(RemoteLanguageModel(Failing(after=2)), None).ask("Where is Paris?")
    assert answer.degraded and answer.text == "Paris is big."
    assert any("server unreachable" in (s.error or "") for s in answer.steps)
    assert [e.type for e in answer.events][-2:] == ["degraded", "finished"]
