"""Chat prompts and plain completions: the GGUF chat template read from the header, completions
that stop at their budget or a stop string and keep the text's whitespace."""

from __future__ import annotations

import numpy as np
import pytest

from gatedrag.errors import InputError, ModelError
from gatedrag.lm.chat import ChatMessage, chat_prompt, complete, gguf_string, template_of

TEMPLATE = "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"


def write_gguf(path, template: str | None):
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_array("tokenizer.ggml.tokens", ["a", "bb", "ccc"] * 50)
    w.add_array("tokenizer.ggml.scores", [0.5] * 150)
    w.add_uint32("llama.context_length", 2048)
    if template is not None:
        w.add_string("tokenizer.chat_template", template)
    w.add_tensor("t", np.zeros(4, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def test_the_chat_template_is_read_from_the_gguf_header(tmp_path):
    with_t, without = tmp_path / "a.gguf", tmp_path / "b.gguf"
    write_gguf(with_t, TEMPLATE)
    write_gguf(without, None)
    assert gguf_string(with_t, "tokenizer.chat_template") == TEMPLATE
    assert gguf_string(without, "tokenizer.chat_template") is None
    (tmp_path / "c.gguf").write_bytes(b"not a gguf file")
    with pytest.raises(ModelError):
        gguf_string(tmp_path / "c.gguf", "tokenizer.chat_template")


def test_messages_render_with_the_template_or_plainly():
    msgs = [ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Hi")]
    assert chat_prompt(msgs, template=TEMPLATE) == "[system] Be brief.\n[user] Hi\n[assistant]"
    assert chat_prompt(msgs, template=None) == "System: Be brief.\nUser: Hi\nAssistant:"
    refusing = "{{ raise_exception('roles must alternate') }}"
    with pytest.raises(InputError, match="roles must alternate"):
        chat_prompt(msgs, template=refusing)


def test_completions_stop_at_the_budget_or_a_stop_string(tiny_lm):
    assert template_of(tiny_lm) is None  # built from a config: no template, the plain format
    long, other = complete(tiny_lm, ["User: hi\nAssistant:", "User: hello\nAssistant:"], max_tokens=7)
    assert long.finish_reason == "length" and len(long.tokens) == 7 and long.prompt_tokens > 0 and other.tokens
    assert long.text == "".join(t.text for t in long.tokens).strip()
    pieces = []
    again = complete(
        tiny_lm, ["User: hi\nAssistant:"], max_tokens=7, on_segment=lambda i, s: pieces.append((i, s.text))
    )[0]
    assert again.text == long.text and pieces and all(i == 0 for i, _ in pieces)  # greedy: the same text
    cut_at = long.text[3:5]
    stopped = complete(tiny_lm, ["User: hi\nAssistant:"], max_tokens=7, stop=[cut_at])[0]
    assert stopped.finish_reason == "stop" and cut_at not in stopped.text and long.text.startswith(stopped.text)
    with pytest.raises(InputError):
        complete(tiny_lm, "a prompt", max_tokens=3)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        complete(tiny_lm, ["p"], max_tokens=0)
