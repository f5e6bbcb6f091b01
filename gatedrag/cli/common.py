"""What every ``gatedrag`` command shares: consoles, quiet library logging, user-error handling."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

import typer
from rich.console import Console

from gatedrag.errors import GatedRAGError

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


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print a gatedrag error without a traceback and exit with status 1."""
    try:
        yield
    except GatedRAGError as err:
        err_console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(1) from None


__all__ = ["console", "err_console", "quiet_libraries", "user_errors"]
