"""One factory: the model, retriever, corpus statistics, extractor and policy a config describes.

The CLI, the Python API (:meth:`gatedrag.GatedRAG.from_config`) and the evaluation runner all
build through here, so a config means the same pipeline everywhere. Components that several
pipelines share (one model and one index for every method of an evaluation) are built once with
:func:`build_components` and handed to :func:`build_rag` for each config.

Example (loads the default model; the first run assembles and converts it once)::

    from gatedrag.config import PipelineConfig
    from gatedrag.factory import build_components, build_rag
    config = PipelineConfig()
    parts = build_components(config)
    rag = build_rag(config, parts)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

from gatedrag.config import ModelConfig, PipelineConfig
from gatedrag.errors import ConfigError
from gatedrag.gate import Gate
from gatedrag.gate.combiner import Combiner
from gatedrag.gate.select import expected_features
from gatedrag.lm.base import LanguageModel, ModelCapabilities
from gatedrag.pipeline import GatedRAG, build_draft_gate
from gatedrag.retrieval.base import Retriever
from gatedrag.retrieval.rerank import Reranker

if TYPE_CHECKING:
    from gatedrag.factcheck.checker import FactChecker
    from gatedrag.factcheck.sentences import SentenceSource

Progress = Callable[[str], None] | None


@dataclass
class Components:
    """What a pipeline is built from; ``corpus`` and ``extractor`` only when a corpus signal is configured."""

    lm: LanguageModel
    retriever: Retriever | None
    corpus: Any = None
    extractor: Any = None
    reranker: Reranker | None = None
    """Only when a config re-ranks deep-search passages by embedding (``deep_search.rerank: dense``)."""


def _reranks_by_embedding(config: PipelineConfig) -> bool:
    deep = config.policy.deep_search
    return deep is not None and deep.rerank == "dense"


def reads_corpus(configs: Sequence[PipelineConfig]) -> bool:
    """Whether any of ``configs`` has a corpus-statistics signal (gate, draft or the fact checker's)."""
    from gatedrag.signals.registry import needs_of

    rules = [r for c in configs for r in [*c.gate.rules, *(c.draft.rules if c.draft is not None else [])]]
    return "corpus" in needs_of(r.signal for r in rules) or any(c.factcheck.corpus_signal for c in configs)


BACKEND_CAPABILITIES: dict[str, ModelCapabilities] = {
    "hf": ModelCapabilities(full_entropy=True, attention=True, twins=True, kv_cache=True),
    "llamacpp": ModelCapabilities(full_entropy=True, attention=False, twins=False, kv_cache=True),
    "topk": ModelCapabilities(full_entropy=False, attention=False, twins=False, kv_cache=True),
    "openai": ModelCapabilities(full_entropy=False, attention=False, twins=False, kv_cache=False),
}
"""What each backend serves, known before anything is loaded (the loaded model declares the same)."""

_NEED_NAMES = {"attention": "attention weights (DRAGIN's RIND)", "twin": "no-context twins (CK-PLUG)"}


class BackendChoice(BaseModel):
    """Which backend a config runs on, and why (``model.backend: auto`` resolved)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["hf", "llamacpp", "topk", "openai"]
    reason: str


def model_needs(configs: Sequence[PipelineConfig]) -> frozenset[str]:
    """What ``configs`` need from the model beyond text and distributions: the ``needs`` of every
    gate and draft signal that may act (a traced-only one the model cannot serve says so in its
    trace), and ``twin`` where knowledge control is always on."""
    from gatedrag.signals.registry import needs_of

    rules = [r for c in configs for r in [*c.gate.rules, *(c.draft.rules if c.draft is not None else [])] if r.act]
    needs = set(needs_of(r.signal for r in rules))
    if any(c.policy.control_mode == "always" for c in configs):
        needs.add("twin")
    return frozenset(needs)


def _llamacpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("llama_cpp") is not None


def _gguf_model(name: str) -> bool:
    from pathlib import Path

    from gatedrag.lm.packaged import PACKAGED_MODELS

    return name in PACKAGED_MODELS or Path(name).suffix.lower() == ".gguf"


def resolve_backend(config: PipelineConfig, *, also: Sequence[PipelineConfig] = ()) -> BackendChoice:
    """The backend ``config`` (and ``also``, sharing its model) runs on. ``auto`` picks llama.cpp
    where it is installed, the model is a GGUF, the CPU lacks native bf16 and no signal needs what
    llama.cpp cannot serve; else transformers. An explicit backend that cannot serve the config's
    signals is a :class:`~gatedrag.errors.ConfigError` naming the backend that can.

    >>> from gatedrag.config import PipelineConfig
    >>> cfg = PipelineConfig.model_validate({"model": {"backend": "topk", "top_k": 20}})
    >>> resolve_backend(cfg).backend
    'topk'
    >>> dragin = cfg.model_copy(update={"gate": cfg.gate.model_validate({"rules": [{"signal": "rind"}]})})
    >>> resolve_backend(dragin)
    Traceback (most recent call last):
    ...
    gatedrag.errors.ConfigError: model.backend topk cannot serve attention weights (DRAGIN's RIND), which the gate's signals need: use model.backend: hf
    """
    from gatedrag.lm.cpu import native_bf16

    model = config.model
    needs = model_needs([config, *also])
    if model.backend != "auto":
        missing = BACKEND_CAPABILITIES[model.backend].missing(needs)
        if missing:
            what = " and ".join(_NEED_NAMES[n] for n in missing)
            raise ConfigError(
                f"model.backend {model.backend} cannot serve {what}, which the gate's signals need: use model.backend: hf"
            )
        if model.backend == "openai" and model.top_k > 20:
            raise ConfigError(
                "model.backend openai: OpenAI-compatible servers return at most 20 alternatives (model.top_k)"
            )
        if model.backend == "llamacpp" and not _gguf_model(model.name):
            raise ConfigError(
                f"model.backend llamacpp reads GGUF files: {model.name!r} is neither a packaged model nor a .gguf file"
            )
        return BackendChoice(backend=model.backend, reason="set in the config")
    if model.device != "cpu":
        return BackendChoice(backend="hf", reason=f"device {model.device}: transformers")
    if not _gguf_model(model.name):
        return BackendChoice(backend="hf", reason="the model is a transformers directory, not a GGUF")
    if not _llamacpp_installed():
        return BackendChoice(
            backend="hf", reason="llama-cpp-python is not installed (pip install 'gatedrag[llamacpp]')"
        )
    if native_bf16():
        return BackendChoice(backend="hf", reason="this CPU has native bf16: transformers runs the model in bfloat16")
    missing = BACKEND_CAPABILITIES["llamacpp"].missing(needs)
    if missing:
        what = " and ".join(_NEED_NAMES[n] for n in missing)
        return BackendChoice(backend="hf", reason=f"the signals need {what}, which llama.cpp cannot serve")
    return BackendChoice(backend="llamacpp", reason="no native bf16 on this CPU and llama-cpp-python is installed")


def with_backend(config: PipelineConfig, choice: BackendChoice) -> PipelineConfig:
    """``config`` with its model backend resolved to ``choice``."""
    return config.model_copy(update={"model": config.model.model_copy(update={"backend": choice.backend})})


def build_model(config: ModelConfig, *, progress: Progress = None) -> LanguageModel:
    """The language model of ``config.backend`` (``auto``: resolved for a config that needs no
    attention and no twins; :func:`build_components` resolves it for the whole pipeline)."""
    if config.backend == "auto":
        choice = resolve_backend(PipelineConfig(model=config, gate={"rules": []}))
        if progress:
            progress(f"backend {choice.backend}: {choice.reason}")
        config = config.model_copy(update={"backend": choice.backend})
    if progress:
        progress(f"loading model {config.name} ({config.backend})")
    if config.backend == "openai":
        from gatedrag.lm.openai_compat import load_openai_model

        return load_openai_model(config)
    if config.backend == "llamacpp":
        from gatedrag.lm.llamacpp import LlamaCppLanguageModel

        return LlamaCppLanguageModel.load(config, progress=progress)
    from gatedrag.lm.hf import HFLanguageModel

    lm = HFLanguageModel.load(config, progress=progress)
    if config.backend == "topk":
        from gatedrag.lm.topk import TopKLanguageModel

        return TopKLanguageModel(lm, k=config.top_k)
    return lm


def build_components(
    config: PipelineConfig,
    *,
    also: Sequence[PipelineConfig] = (),
    lm: LanguageModel | None = None,
    progress: Progress = None,
) -> Components:
    """Retriever, corpus statistics (if ``config`` or one of ``also`` reads them), model (unless
    ``lm`` is given) and extractor, built from ``config``."""
    from gatedrag.retrieval.factory import build_retriever

    if lm is None:
        choice = resolve_backend(config, also=also)  # before anything is loaded: a bad backend fails fast
        if progress and config.model.backend == "auto":
            progress(f"backend {choice.backend}: {choice.reason}")
        config = with_backend(config, choice)
    embedder = None
    if any(_reranks_by_embedding(c) for c in [config, *also]):
        from gatedrag.retrieval.factory import build_embedder

        embedder = build_embedder(config.retrieval)  # shared with a dense retriever
    retriever = build_retriever(config.retrieval, progress=progress, embedder=embedder)
    corpus = None
    if reads_corpus([config, *also]):
        from gatedrag.corpus.factory import build_corpus_stats
        from gatedrag.retrieval.corpus import demo_corpus_path

        corpus = build_corpus_stats(
            config.corpus_stats,
            config.retrieval.corpus or demo_corpus_path(),
            progress=progress,
            limits=config.backends,
        )
    lm = lm or build_model(config.model, progress=progress)
    extractor = None
    if corpus is not None:
        from gatedrag.corpus.extract import load_extractor

        extractor = load_extractor(config.corpus_stats.extractor, lm=lm)
    reranker = None
    if embedder is not None:
        from gatedrag.retrieval.rerank import EmbeddingReranker

        reranker = EmbeddingReranker(embedder)
    return Components(lm=lm, retriever=retriever, corpus=corpus, extractor=extractor, reranker=reranker)


def build_rag(config: PipelineConfig, parts: Components) -> GatedRAG:
    """The pipeline of ``config`` on ready components: its gate, draft gate and policy."""
    return GatedRAG(
        parts.lm,
        parts.retriever,
        config,
        gate=Gate(config.gate, corpus=parts.corpus, extractor=parts.extractor),
        draft_gate=build_draft_gate(config, corpus=parts.corpus, extractor=parts.extractor),
        reranker=parts.reranker if _reranks_by_embedding(config) else None,
        combiner=load_combiner(config),
    )


def build_checker(
    config: PipelineConfig,
    parts: Components,
    *,
    calibration: Combiner | None = None,
    sentences: SentenceSource | None = None,
) -> FactChecker:
    """The fact checker of ``config.factcheck`` on ready components (its corpus signal on the
    components' corpus statistics and extractor, when configured)."""
    from gatedrag.factcheck.checker import FactChecker
    from gatedrag.factcheck.corpus import CorpusSignals

    corpus = None
    if config.factcheck.corpus_signal:
        if parts.corpus is None or parts.extractor is None:
            raise ConfigError("factcheck.corpus_signal needs corpus statistics: build the components from this config")
        corpus = CorpusSignals(parts.corpus, parts.extractor)
    extra = {"sentences": sentences} if sentences is not None else {}
    return FactChecker(parts.lm, parts.retriever, config.factcheck, calibration=calibration, corpus=corpus, **extra)


def load_combiner(config: PipelineConfig) -> Combiner | None:
    """The combiner file of ``policy.select`` (refused if fitted on features this config lacks)."""
    select = config.policy.select
    if select is None or select.combiner is None:
        return None
    return Combiner.load(select.combiner, expect_features=expected_features(config))


__all__ = [
    "BACKEND_CAPABILITIES",
    "BackendChoice",
    "Components",
    "build_checker",
    "build_components",
    "build_model",
    "build_rag",
    "load_combiner",
    "model_needs",
    "reads_corpus",
    "resolve_backend",
    "with_backend",
]
