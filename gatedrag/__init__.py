"""gatedrag: uncertainty-gated retrieval-augmented generation.

A language model answers; gatedrag watches how sure it is while it writes and retrieves only for
the sentences it doubts, recording why in the answer's trace. Nothing heavy is imported here: the
model and index load when you build a :class:`GatedRAG`.

Example::

    from gatedrag import GatedRAG
    answer = GatedRAG.from_config().ask("Who directed the 1994 film about Ed Wood?")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gatedrag.config import PipelineConfig, load_config
from gatedrag.errors import GatedRAGError
from gatedrag.types import Answer, Decision, Step

if TYPE_CHECKING:
    from gatedrag.pipeline import GatedRAG

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "GatedRAG":
        from gatedrag.pipeline import GatedRAG

        return GatedRAG
    raise AttributeError(f"module 'gatedrag' has no attribute {name!r}")


__all__ = ["Answer", "Decision", "GatedRAG", "GatedRAGError", "PipelineConfig", "Step", "load_config"]
