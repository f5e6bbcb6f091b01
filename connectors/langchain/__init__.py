"""LangChain integration (``pip install 'gatedrag[langchain]'``): the gated answer and the fact
checker as Runnables, retrievers both ways, gatedrag's model as a chat model with logprobs, its embedder as LangChain
embeddings.

Example:
    >>> from gatedrag.connectors.langchain import GatedRAGRunnable, GatedragRetriever, LangChainRetriever
"""

from __future__ import annotations

try:
    import langchain_core  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("the LangChain connector needs langchain-core: pip install 'gatedrag[langchain]'") from err

from .chat_lm import LangChainCompleter, langchain_language_model
from .chat_model import GatedragChatModel
from .documents import to_document, to_passage
from .embeddings import GatedragEmbeddings
from .factcheck import FactCheckRunnable, verdict_of
from .retrievers import GatedragRetriever, LangChainRetriever
from .runnable import GatedRAGRunnable, answer_of

__all__ = [
    "FactCheckRunnable",
    "GatedRAGRunnable",
    "GatedragChatModel",
    "GatedragEmbeddings",
    "GatedragRetriever",
    "LangChainCompleter",
    "LangChainRetriever",
    "answer_of",
    "langchain_language_model",
    "to_document",
    "to_passage",
    "verdict_of",
]
