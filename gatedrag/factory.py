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
from typing import Any

from gatedrag.config import ModelConfig, PipelineConfig
from gatedrag.gate import Gate
from gatedrag.lm.base import LanguageModel
from gatedrag.pipeline import GatedRAG, build_draft_gate
from gatedrag.retrieval.base import Retriever

Progress = Callable[[str], None] | None


@dataclass
class Components:
    """What a pipeline is built from; ``corpus`` and ``extractor`` only when a corpus signal is configured."""

    lm: LanguageModel
    retriever: Retriever | None
    corpus: Any = None
    extractor: Any = None


def reads_corpus(configs: Sequence[PipelineConfig]) -> bool:
    """Whether any of ``configs`` has a corpus-statistics signal (gate or draft)."""
    from gatedrag.signals.registry import needs_of

    rules = [r for c in configs for r in [*c.gate.rules, *(c.draft.rules if c.draft is not None else [])]]
    return "corpus" in needs_of(r.signal for r in rules)


def build_model(config: ModelConfig, *, progress: Progress = None) -> LanguageModel:
    """The language model of ``config.backend``."""
    if progress:
        progress(f"loading model {config.name}")
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

    retriever = build_retriever(config.retrieval, progress=progress)
    corpus = None
    if reads_corpus([config, *also]):
        from gatedrag.corpus.factory import build_corpus_stats
        from gatedrag.retrieval.corpus import demo_corpus_path

        corpus = build_corpus_stats(
            config.corpus_stats, config.retrieval.corpus or demo_corpus_path(), progress=progress
        )
    lm = lm or build_model(config.model, progress=progress)
    extractor = None
    if corpus is not None:
        from gatedrag.corpus.extract import load_extractor

        extractor = load_extractor(config.corpus_stats.extractor, lm=lm)
    return Components(lm=lm, retriever=retriever, corpus=corpus, extractor=extractor)


def build_rag(config: PipelineConfig, parts: Components) -> GatedRAG:
    """The pipeline of ``config`` on ready components: its gate, draft gate and policy."""
    return GatedRAG(
        parts.lm,
        parts.retriever,
        config,
        gate=Gate(config.gate, corpus=parts.corpus, extractor=parts.extractor),
        draft_gate=build_draft_gate(config, corpus=parts.corpus, extractor=parts.extractor),
    )


__all__ = ["Components", "build_components", "build_model", "build_rag", "reads_corpus"]
