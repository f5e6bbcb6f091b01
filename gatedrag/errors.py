"""One exception hierarchy for everything gatedrag raises on purpose.

Every error a user can provoke with bad input is a :class:`GatedRAGError`; the CLI prints its
message (which says what to fix) without a traceback and exits non-zero.

Example:
    >>> from gatedrag.errors import GatedRAGError, InputError
    >>> issubclass(InputError, GatedRAGError)
    True
"""

from __future__ import annotations


class GatedRAGError(Exception):
    """Base class of every error gatedrag raises deliberately."""


class InputError(GatedRAGError, ValueError):
    """A question, argument or prompt that cannot be used as given."""


class DatasetError(InputError):
    """A benchmark file is missing or not in the format its loader expects."""


class ContextLengthError(InputError):
    """A prompt (with passages and the answer so far) longer than the model's context window."""


class ConfigError(GatedRAGError, ValueError):
    """A configuration file or value that is missing, malformed or out of range."""


class CorpusError(GatedRAGError):
    """A corpus file that is missing, unreadable, malformed or empty."""


class RetrievalIndexError(GatedRAGError):
    """A retrieval index that is missing, stale or unreadable."""


class CorpusIndexError(GatedRAGError):
    """A corpus-statistics (Infini-gram) index that is missing, incomplete or cannot be built."""


class TokenizerMismatchError(CorpusIndexError):
    """A corpus-statistics index opened with another tokenizer than the one it was built with."""


class CorpusQueryError(InputError):
    """A corpus-statistics query that cannot be asked as given (empty after tokenising, too long,
    too many clauses)."""


class ModelError(GatedRAGError):
    """A language model that cannot be found, assembled, verified or loaded."""


class ModelNotInstalledError(ModelError):
    """The packages that carry a model's weights are not installed."""


class ModelIntegrityError(ModelError):
    """A model file that is corrupt or partial (wrong size or checksum)."""


class BackendError(GatedRAGError):
    """A backend (retriever, model server) that failed while answering."""


class BackendTimeout(BackendError):
    """A backend call (retriever, corpus statistics, embedding model) that did not return in time."""


class RetrievalError(BackendError):
    """A retriever that raised or returned something unusable."""


class CorpusBackendError(BackendError):
    """A corpus-statistics backend (local engine, HTTP API) that failed or could not be reached."""


class SchedulerError(GatedRAGError):
    """A turn the shared scheduler could not take or finish (:mod:`gatedrag.scheduler`)."""


class SchedulerBusy(SchedulerError):
    """The scheduler's queue is full: retry later, or raise ``max_pending``."""


class SchedulerClosed(SchedulerError):
    """The scheduler (or the chat session) was closed: open a new one."""


class SessionClosed(GatedRAGError):
    """A chat session used after ``close()``: open a new one."""


class TurnCancelled(SchedulerError):
    """The turn was cancelled before it finished; its row was freed."""


class DeadlineExceeded(SchedulerError):
    """The turn's deadline passed while it was still waiting for a row (nothing was written)."""


class StorageError(GatedRAGError):
    """A file that could not be written (the disk is full, a quota, permissions); what was written
    before it is kept intact."""


class RunInUse(GatedRAGError):
    """Another process is writing the same run directory or records file (it holds its lock)."""


__all__ = [
    "BackendError",
    "BackendTimeout",
    "ConfigError",
    "ContextLengthError",
    "CorpusBackendError",
    "CorpusError",
    "CorpusIndexError",
    "CorpusQueryError",
    "DatasetError",
    "DeadlineExceeded",
    "GatedRAGError",
    "InputError",
    "ModelError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "RetrievalError",
    "RetrievalIndexError",
    "RunInUse",
    "SchedulerBusy",
    "SchedulerClosed",
    "SchedulerError",
    "SessionClosed",
    "StorageError",
    "TokenizerMismatchError",
    "TurnCancelled",
]
