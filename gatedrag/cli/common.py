"""What every ``gatedrag`` command shares: consoles, quiet library logging, user-error handling."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from gatedrag.errors import GatedRAGError

if TYPE_CHECKING:
    from gatedrag.pipeline import GatedRAG

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def quiet_libraries() -> None:
    """Offline mode and no transformers warnings or progress bars (nor its deprecation notices,
    which would interleave with a streamed answer)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def warn_if_exposed(host: str, what: str) -> None:
    """Say so on stderr when a server is bound beyond this machine (it has no authentication)."""
    if host not in LOOPBACK:
        err_console.print(
            f"[yellow]warning:[/yellow] {what} is bound to {host}: anyone who can reach this address can use it "
            "(there is no authentication); bind 127.0.0.1 and put a proxy with access control in front to share it"
        )


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a gatedrag error without a traceback and exit with status 1."""
    try:
        yield
    except GatedRAGError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None


def status_progress(status: Any) -> Callable[[str], None]:
    """A progress callback that shows each message on ``status`` (a rich status line)."""
    return lambda msg: status.update(msg[:1].upper() + msg[1:] + "…")


def load_pipeline(config: Path | None, *, corpus: Path | None = None, backend: str | None = None) -> GatedRAG:
    """The pipeline of a config file (default: the embedded defaults), its corpus and model backend
    overridden when given, loaded under a status line."""
    from gatedrag.config import PipelineConfig, load_config, parse_config

    cfg = load_config(config) if config else PipelineConfig()
    if corpus is not None:
        cfg = cfg.model_copy(update={"retrieval": cfg.retrieval.model_copy(update={"corpus": corpus})})
    if backend is not None:
        cfg = parse_config(cfg.model_dump() | {"model": cfg.model.model_dump() | {"backend": backend}})
    quiet_libraries()
    from gatedrag.pipeline import GatedRAG

    with err_console.status("Loading the model and index…") as status:
        return GatedRAG.from_config(cfg, progress=status_progress(status))


__all__ = ["console", "err_console", "load_pipeline", "quiet_libraries", "status_progress", "user_errors"]
