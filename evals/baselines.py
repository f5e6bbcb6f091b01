"""The compared methods, each a configuration of the same :class:`gatedrag.GatedRAG` pipeline.

Every method records the same cheap token signals (TokenRAG, FLARE, G-NLL, entropy) on every
sentence, acting or traced only, so that their calibration can be compared across methods; DRAGIN
also records RIND. Each entry says which published rule it reproduces and where it differs.

Example:
    >>> from gatedrag.evals.baselines import METHODS, method_config
    >>> cfg = method_config("flare", "hotpotqa")
    >>> cfg.retrieval.top_k, cfg.policy.retrieve_first, [r.signal for r in cfg.gate.rules if r.act]
    (2, True, ['flare'])
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from gatedrag.config import PipelineConfig
from gatedrag.errors import ConfigError

QUCO_INDEX_TOKENS = 4_610_629_088_477  # the OLMo-2 Infini-gram index of QuCo-RAG's configs (anchors §1.1)
QUCO_TAU_ENTITY = {"2wikimultihopqa": 1e3, "hotpotqa": 1e5}  # shipped ngram_threshold_question
_UNLIMITED = 16  # retrievals per answer for methods whose papers have no cap (the 128-token budget bounds them)
FIXED_LENGTH_TOKENS = 20


class Method(BaseModel):
    """A named baseline: the pipeline settings that reproduce a published rule."""

    model_config = ConfigDict(frozen=True)
    name: str
    reproduces: str
    source: str
    differs: str = ""
    acting: tuple[str, ...] = ()
    """Signals allowed to trigger retrieval; the others are traced only."""
    settings: dict[str, Any] = {}
    gate_from_base: bool = False
    """Run the gate of the base config (the default, or a tuned one) instead of ``acting``'s rules."""
    context: Literal["retrieved", "gold"] = "retrieved"
    """``gold``: the dataset's supporting passages are given with each question (the ceiling that
    perfect retrieval would give this model); ``retrieved``: passages come from the retriever."""


def _rules(acting: tuple[str, ...], dataset: str, *, rind: bool, corpus: str | None = None) -> list[dict[str, Any]]:
    two_wiki = dataset == "2wikimultihopqa"
    rules: list[dict[str, Any]] = [
        {"signal": "token_rag", "threshold": 0.1},
        {"signal": "flare", "theta": 0.8, "beta": 0.4},
        {"signal": "gnll"},
        {"signal": "entropy"},
    ]
    if rind:
        # DRAGIN thresholds of the QuCo-RAG configs for Qwen2.5 / OLMo-2 / Llama-3 (anchors §3.1)
        rules.append({"signal": "rind", "threshold": 1.0 if two_wiki else 1.3, "query_words": 25 if two_wiki else 35})
    if corpus == "quco":
        # QuCo's absolute thresholds carried over as a rate: counts per million index tokens
        tau = QUCO_TAU_ENTITY.get(dataset, 1e3) * 1e6 / QUCO_INDEX_TOKENS
        rules.append({"signal": "entity_freq", "tau": tau, "unit": "per_million", "aggregate": "mean"})
        rules.append({"signal": "cooc", "tau_cooc": 1, "query": "head_relation"})
    elif corpus == "default":  # gatedrag's own defaults for the corpus family
        rules.append({"signal": "entity_freq"})
        rules.append({"signal": "cooc"})
    for r in rules:
        r["act"] = r["signal"] in acting
    return rules


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            name="no-rag",
            reproduces="Wo-RAG / CoT: few-shot chain of thought without retrieval",
            source="DRAGIN Table 2 'wo-RAG'; QuCo-RAG Table 1 'Wo-RAG'",
        ),
        Method(
            name="gold",
            reproduces="the retrieval ceiling: the dataset's supporting passages given with the question, no retrieval",
            source="HotpotQA / 2Wiki supporting_facts, MuSiQue is_supporting (evals/gold.py)",
            differs="not a published method: it shows how far each method is from perfect retrieval",
            context="gold",
        ),
        Method(
            name="sr-rag",
            reproduces="SR-RAG: retrieve once with the question, then answer",
            source="DRAGIN `SingleRAG`; QuCo-RAG Table 1",
            settings={"policy": {"retrieve_first": True}},
        ),
        Method(
            name="fl-rag",
            reproduces=f"FL-RAG: retrieve before every {FIXED_LENGTH_TOKENS}-token chunk with the previous chunk",
            source="DRAGIN Table 2 'FL-RAG' (`FixLengthRAG`, method fix-length-retrieval)",
            differs=(
                "DRAGIN's released code queries with the question every time; set "
                "policy.paper.scheduled_query=question for that. The chunk length is ours (the paper's is not "
                "stated in what we read)."
            ),
            settings={
                "decoding": {"segment_tokens": FIXED_LENGTH_TOKENS},
                "policy": {
                    "retrieve_first": True,
                    "scheduled_retrieval": True,
                    "keep_passages": True,
                    "max_retrievals": _UNLIMITED,
                },
            },
        ),
        Method(
            name="fs-rag",
            reproduces="FS-RAG (IRCoT style): retrieve before every sentence with the previous sentence",
            source="DRAGIN Table 2 'FS-RAG'; QuCo-RAG Table 1 'FS-RAG (IRCoT-style)'",
            differs="DRAGIN's released code queries with the question every time (policy.paper.scheduled_query=question).",
            settings={
                "policy": {
                    "retrieve_first": True,
                    "scheduled_retrieval": True,
                    "keep_passages": True,
                    "max_retrievals": _UNLIMITED,
                }
            },
        ),
        Method(
            name="flare",
            reproduces="original FLARE_direct: any token p < 0.8 retrieves, query masks p <= 0.4, top-2 replace",
            source="FLARE paper §3 and configs/2wikihop_flare_config.json (anchors §4.1-4.2)",
            differs="answer budget 128 tokens as in the QuCo/DRAGIN protocol (FLARE used 256).",
            acting=("flare",),
            settings={
                "retrieval": {"top_k": 2},
                "policy": {"retrieve_first": True, "keep_passages": True, "max_retrievals": _UNLIMITED},
            },
        ),
        Method(
            name="token-rag",
            reproduces="TokenRAG, the 'FLARE' of the DRAGIN and QuCo-RAG repos: mean(1-p) > 0.1 retrieves",
            source="DRAGIN `TokenRAG` (method token), anchors §4.3",
            differs=(
                "the code keeps the sentences before the flagged one minus one (an off-by-one we do not "
                "reproduce); the rest of the answer is written with the passages and accepted, as in the code."
            ),
            acting=("token_rag",),
            settings={
                "policy": {
                    "keep_passages": True,
                    "max_retrievals": _UNLIMITED,
                    "paper": {"accept_after_retrieval": "rest"},
                }
            },
        ),
        Method(
            name="dragin",
            reproduces="DRAGIN: RIND (entropy x max attention) trigger, QFS attention query, first sentence kept",
            source="DRAGIN paper §3 and `AttnWeightRAG` (anchors §3)",
            differs=(
                "attention is measured when each sentence ends (not over later sentences); POS filter "
                "approximated by a function-word list; QFS takes the highest-attention words (the code's "
                "ascending sort is rind.query_order=lowest)."
            ),
            acting=("rind",),
            settings={"policy": {"keep_passages": False, "max_retrievals": _UNLIMITED}},
        ),
        Method(
            name="quco-rag",
            reproduces=(
                "QuCo-RAG: Stage 1 retrieves with the question when its entities are rare in the corpus (mean "
                "frequency < tau_entity); Stage 2 retrieves for a sentence whose (head, tail) never co-occur"
            ),
            source="QuCo-RAG paper §3 and `QuCo_RAG` inference code (anchors §1.2-1.3)",
            differs=(
                "counts come from an Infini-gram index of the dataset's own retrieval corpus (GPT-2 tokens, "
                "about 1M tokens) instead of the 4.6T-token OLMo-2 index; tau_entity is QuCo's per-dataset value "
                "turned into a rate (1e3 / 1e5 per 4.6T tokens), so Stage 1 fires only for entities absent from "
                "the corpus; the co-occurrence window is one passage (median length) instead of 1000 Llama "
                "tokens; claims come from the packaged spaCy extractor, not QuCo's fine-tuned 0.5B model; a "
                "negation sentence is skipped but later sentences are still checked (QuCo stops checking); the "
                "code-only 2-tuple entity-count check is not reproduced."
            ),
            acting=("entity_freq", "cooc"),
            settings={"policy": {"check_final_sentence": False, "keep_passages": True, "max_retrievals": _UNLIMITED}},
        ),
        Method(
            name="sr-rag-ck",
            reproduces="SR-RAG decoded under CK-PLUG's adaptive knowledge control (its RAG setting)",
            source="CK-PLUG `eval_rag.py` (adaptive on), anchors §2.1",
            differs=(
                "top-3 BM25 passages and the few-shot CoT prompt of the other methods instead of CK-PLUG's "
                "10 BGE passages and KILT prompts; the released code's conflict margin (epsilon=1)."
            ),
            settings={
                "policy": {"retrieve_first": True, "control_mode": "always"},
                "control": {"alpha": 0.5, "adaptive": True, "epsilon": 1.0},
            },
        ),
        Method(
            name="gated-corpus",
            reproduces=(
                "gatedrag's gate with the corpus-statistics family acting (entity_freq before generation, cooc "
                "per sentence, gatedrag defaults) and the token signals traced, at most 3 retrievals"
            ),
            source="gatedrag defaults (EntityFrequencyRule, CooccurrenceRule)",
            acting=("entity_freq", "cooc"),
        ),
        Method(
            name="gated",
            gate_from_base=True,
            reproduces="gatedrag's default gate (TokenRAG rule acting, others traced), at most 3 retrievals",
            source="gatedrag defaults (PipelineConfig())",
            acting=("token_rag",),
        ),
        Method(
            name="gated-deep",
            gate_from_base=True,
            reproduces=(
                "gatedrag's default gate with the deep-search rung: a sentence still doubtful after its retrieval "
                "is searched again (question + masked sentence, then with the previous sentence), passages "
                "accumulated up to 6, at most 3 retrievals"
            ),
            source="gatedrag (policy.deep_search)",
            acting=("token_rag",),
            settings={"policy": {"deep_search": {"rounds": 2}}},
        ),
        Method(
            name="gated-select",
            gate_from_base=True,
            reproduces=(
                "gatedrag's default gate with answer selection: every final-answer sentence it proposed is a "
                "candidate, the one with the best P(True) is returned"
            ),
            source="gatedrag (policy.select)",
            acting=("token_rag",),
            settings={"policy": {"select": {"verify": True}}},
        ),
    ]
}

OWN_METHODS = ("gated", "gated-corpus", "gated-deep", "gated-select")
"""gatedrag's own methods, which keep gatedrag's defaults where a baseline reproduces its paper."""

PROMPTS = {"hotpotqa": "hotpotqa", "2wikimultihopqa": "2wikimultihopqa"}
"""Few-shot prompt per dataset as in the papers (8-shot HotpotQA, 6-shot 2Wiki); others use ``cot``."""


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def method_config(name: str, dataset: str, base: PipelineConfig | None = None) -> PipelineConfig:
    """The pipeline config of method ``name`` on ``dataset``, on top of ``base`` (model, corpus,
    batch size and other settings the method does not fix)."""
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; choose from {', '.join(METHODS)}")
    method = METHODS[name]
    data = (base or PipelineConfig()).model_dump(mode="json")
    if not method.gate_from_base:
        corpus = {"quco-rag": "quco", "gated-corpus": "default"}.get(name)
        data["gate"]["rules"] = _rules(method.acting, dataset, rind=name == "dragin", corpus=corpus)
    if name not in OWN_METHODS:  # the published methods regenerate after every retrieval
        data["policy"]["paper"]["regenerate_without_new_passages"] = True
    if data["prompt"] == "cot":
        data["prompt"] = PROMPTS.get(dataset, "cot")
    data = _merge(data, method.settings)
    return PipelineConfig.model_validate(data)


__all__ = [
    "FIXED_LENGTH_TOKENS",
    "METHODS",
    "OWN_METHODS",
    "PROMPTS",
    "QUCO_INDEX_TOKENS",
    "QUCO_TAU_ENTITY",
    "Method",
    "method_config",
]
