"""gatedrag's model as a LangChain chat model: langchain-tests' unit and integration suites (the
real Gemma 3 270M), OpenAI-shaped logprobs, streaming that adds up to invoke, bad input."""

from __future__ import annotations

import math

import pytest
from helpers.scripted import ScriptedLM
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from gatedrag.config import ModelConfig
from gatedrag.connectors.langchain import GatedragChatModel
from gatedrag.connectors.langchain.chat_model import mean_probability
from gatedrag.errors import InputError
from gatedrag.lm.chat import ChatMessage, chat_prompt


class TestGatedragChatModelUnit(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[GatedragChatModel]:
        return GatedragChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": ModelConfig(name="gemma-3-270m")}

    has_tool_calling = property(lambda self: False)
    has_structured_output = property(lambda self: False)
    supports_model_override = property(lambda self: False)


@pytest.mark.model
class TestGatedragChatModelIntegration(ChatModelIntegrationTests):
    """The suite with the real Gemma 3 270M (loaded once; every test's model shares it)."""

    @pytest.fixture(autouse=True)
    def _lm(self, gemma_lm):
        self._gemma = gemma_lm

    @property
    def chat_model_class(self) -> type[GatedragChatModel]:
        return GatedragChatModel

    @property
    def chat_model_params(self) -> dict:
        return {"model": ModelConfig(name="gemma-3-270m"), "lm": self._gemma, "max_tokens": 12}

    has_tool_calling = property(lambda self: False)
    has_structured_output = property(lambda self: False)
    supports_model_override = property(lambda self: False)
    supports_json_mode = property(lambda self: False)
    returns_usage_metadata = property(lambda self: True)


def scripted(**kw) -> GatedragChatModel:
    lm = ScriptedLM([("Paris is the capital.", 0.8), ("It is in France.", 0.5)], [])
    return GatedragChatModel(lm=lm, **kw)


def test_logprobs_are_shaped_as_openai_returns_them():
    m = scripted(top_logprobs=0).invoke([SystemMessage("Be brief."), HumanMessage("Capital of France?")])
    content = m.response_metadata["logprobs"]["content"]
    assert "".join(e["token"] for e in content) == m.content  # the scripted tokens carry no space between sentences
    assert all(set(e) == {"token", "logprob", "bytes", "top_logprobs"} for e in content)
    assert content[0]["bytes"] == list(b"Paris") and content[0]["logprob"] == pytest.approx(math.log(0.8))
    assert m.usage_metadata["output_tokens"] == len(content) and m.response_metadata["finish_reason"] == "stop"
    assert mean_probability(m) == pytest.approx(math.exp(sum(e["logprob"] for e in content) / len(content)))
    assert "logprobs" not in scripted(logprobs=False).invoke("Capital?").response_metadata


def test_stream_adds_up_to_invoke():
    chat = scripted()
    chunks = list(chat.stream("Capital of France?"))
    assert [c.content for c in chunks if c.content] == ["Paris is the capital.", "It is in France."]
    total = chunks[0]
    for c in chunks[1:]:
        total = total + c
    invoked = chat.invoke("Capital of France?")
    assert total.content == invoked.content
    assert total.response_metadata["logprobs"] == invoked.response_metadata["logprobs"]
    assert total.usage_metadata == invoked.usage_metadata


@pytest.mark.parametrize(
    "bad",
    [
        [ToolMessage("x", tool_call_id="1")],
        [HumanMessage(content=[{"type": "image_url", "image_url": {"url": "http://x/y.png"}}])],
        [AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "1"}])],
    ],
)
def test_what_it_cannot_read_is_a_typed_error(bad):
    with pytest.raises(InputError):
        scripted().invoke(bad)


def test_bad_settings_are_typed_errors():
    with pytest.raises(InputError, match="unknown settings"):
        scripted().invoke("hi", tools=[{"name": "f"}])
    with pytest.raises(InputError, match="max_tokens"):
        scripted().invoke("hi", max_tokens=0)
    with pytest.raises(InputError, match="stop"):
        scripted().invoke("hi", stop=[3])
    with pytest.raises(InputError, match="LanguageModel"):
        GatedragChatModel(lm="not a model").invoke("hi")


def test_the_qwen_template_wraps_the_turns():
    template = (
        "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    prompt = chat_prompt([ChatMessage(role="user", content="Hi")], template=template)
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    with pytest.raises(InputError):
        chat_prompt([], template=None)


def test_a_langchain_chat_model_with_logprobs_is_gateds_language_model(tiny_lm):
    from gatedrag.config import GateConfig, PipelineConfig, TokenRAGRule
    from gatedrag.connectors.langchain import langchain_language_model
    from gatedrag.pipeline import GatedRAG
    from gatedrag.retrieval.bm25 import BM25Retriever
    from gatedrag.types import Passage

    chat = GatedragChatModel(lm=tiny_lm, top_logprobs=3)
    lm = langchain_language_model(chat, top_k=3)
    retriever = BM25Retriever.build([Passage(id=str(i), title=f"T{i}", text=f"alpha beta word{i}") for i in range(3)])
    cfg = PipelineConfig(
        gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]),
        decoding={"max_answer_tokens": 24, "max_sentence_tokens": 8},
        policy={"max_retrievals": 1},
    )
    answer = GatedRAG(lm, retriever, cfg).ask("alpha word1?")
    signals = [v for s in answer.steps if s.kind == "sentence" for v in s.signals]
    assert signals and all(v.note is None for v in signals)  # computed from the returned logprobs
    assert answer.counts.retrievals == 1 and answer.text


def test_a_chat_model_without_logprobs_leaves_the_token_signals_unavailable():
    from langchain_core.language_models import GenericFakeChatModel

    from gatedrag.config import GateConfig, PipelineConfig, TokenRAGRule
    from gatedrag.connectors.langchain import langchain_language_model
    from gatedrag.gate.evaluator import NO_LOGPROBS
    from gatedrag.pipeline import GatedRAG

    def fake():
        return GenericFakeChatModel(messages=iter([AIMessage("Paris is big. So the answer is Paris.")] * 3))

    cfg = PipelineConfig(gate=GateConfig(rules=[TokenRAGRule(threshold=0.0)]))
    answer = GatedRAG(langchain_language_model(fake(), logprobs=False), None, cfg).ask("Where?")
    assert answer.answer == "Paris" and {v.note for s in answer.steps for v in s.signals} == {NO_LOGPROBS}
    declared = GatedRAG(langchain_language_model(fake()), None, cfg).ask("Where?")  # logprobs declared, none came
    assert declared.degraded and any("declares them" in (s.error or "") for s in declared.steps)


def test_a_stream_left_early_stops_the_model(monkeypatch):
    import time

    import gatedrag.connectors.langchain.chat_model as cm

    done = []
    real = cm.complete

    def recording(*a, **kw):
        told = kw["on_segment"]

        def slow(i, piece):  # a model that takes its time over each sentence
            told(i, piece)
            time.sleep(0.2)

        out = real(*a, **{**kw, "on_segment": slow})
        done.extend(out)
        return out

    monkeypatch.setattr(cm, "complete", recording)
    lm = ScriptedLM([(f"Sentence {i}.", 0.9) for i in range(6)], [])
    stream = GatedragChatModel(lm=lm).stream("Go on.")
    first = next(stream)
    stream.close()  # the consumer leaves after one chunk
    assert first.content == "Sentence 0." and len(done) == 1 and done[0].text.count("Sentence") <= 2
