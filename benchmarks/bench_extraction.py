"""Entity/claim extraction quality on the hand-labelled gold set (evals/data/extraction_gold.jsonl):
the packaged spaCy pipeline vs the default model prompted few-shot (QuCo's output format).

python benchmarks/bench_extraction.py [--no-llm] [--batch-size 16]
"""

from __future__ import annotations

import argparse

from common import DATA, save


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-llm", action="store_true", help="score spaCy only")
    ap.add_argument("--batch-size", type=int, default=16)
    args = ap.parse_args()

    from gatedrag.corpus.extract import LLMExtractor, SpacyExtractor
    from gatedrag.evals.extraction import load_gold, score_extractor

    gold = load_gold(DATA)
    result = {"items": len(gold), "spacy": score_extractor(SpacyExtractor(), gold).model_dump()}
    if not args.no_llm:
        from gatedrag.config import ModelConfig
        from gatedrag.lm.hf import HFLanguageModel

        lm = HFLanguageModel.load(ModelConfig())
        base = LLMExtractor.from_model(lm)

        def batched(prompts: list[str], budget: int) -> list[str]:
            out: list[str] = []
            for i in range(0, len(prompts), args.batch_size):
                out += base.generate(prompts[i : i + args.batch_size], budget)
            return out

        result["llm"] = score_extractor(LLMExtractor(batched), gold).model_dump()
        result["llm"]["model"] = lm.name
    save("extraction", result)


if __name__ == "__main__":
    main()
