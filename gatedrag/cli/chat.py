"""``gatedrag chat``: a conversation in the terminal. Each sentence is printed when the gate accepts
it, shaded by its confidence (bright: sure; dim: unsure), with the passages it cites; commands:
``/sources`` (the last answer's cited passages), ``/trace`` (its steps), ``/reset``, ``/save FILE``,
``/quit``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from gatedrag.cli.common import console, load_pipeline, user_errors
from gatedrag.errors import GatedRAGError

HELP = "/sources  /trace  /reset  /save FILE  /quit"


def shade(confidence: float | None) -> str:
    """A rich style for a sentence of this confidence.

    >>> shade(0.95), shade(0.6), shade(0.2)
    ('bold', 'default', 'dim')
    """
    if confidence is None:
        return "default"
    return "bold" if confidence >= 0.85 else "default" if confidence >= 0.5 else "dim"


def run_chat(
    config: Annotated[Path | None, typer.Option(help="YAML or TOML config file.")] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="JSONL corpus to retrieve from (default: the demo corpus).")
    ] = None,
    history: Annotated[Path | None, typer.Option(help="Go on from a conversation saved with /save.")] = None,
) -> None:
    """Talk with the gated pipeline: follow-ups are resolved against the conversation."""
    from gatedrag.chat import ChatSession, Condensed
    from gatedrag.events import Finished, RetrievalStarted, SentenceAccepted

    with user_errors():
        rag = load_pipeline(config, corpus=corpus)
        chat = ChatSession.load(rag, history) if history else ChatSession(rag)
    console.print(f"[dim]gatedrag chat ({rag.lm.name}). {HELP}[/dim]")
    commands: dict[str, Callable[[str], None]] = {}

    def sources(_: str) -> None:
        if not chat.history.turns:
            console.print("[dim]no answer yet[/dim]")
        for p in chat.history.turns[-1].answer.sources if chat.history.turns else []:
            console.print(f"[cyan]{escape(p.title or p.id)}[/cyan]: {escape(p.text[:300])}")

    def trace(_: str) -> None:
        if not chat.history.turns:
            console.print("[dim]no answer yet[/dim]")
            return
        from gatedrag.cli.app import _steps_table

        console.print(_steps_table(chat.history.turns[-1].answer))

    def reset(_: str) -> None:
        chat.reset()
        console.print("[dim]conversation forgotten[/dim]")

    def save(arg: str) -> None:
        if not arg:
            console.print("[red]/save needs a file name[/red]")
            return
        console.print(f"[dim]saved to {chat.save(arg)}[/dim]")

    commands.update({"/sources": sources, "/trace": trace, "/reset": reset, "/save": save})
    while True:
        try:
            message = console.input("[bold green]you>[/bold green] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            return
        if not message:
            continue
        name, _, arg = message.partition(" ")
        if name in ("/quit", "/exit"):
            return
        if name in commands:
            commands[name](arg.strip())
            continue
        if name.startswith("/"):
            console.print(f"[red]unknown command {escape(name)}[/red] ({HELP})")
            continue
        try:
            for item in chat.stream(message):
                if isinstance(item, Condensed) and item.action == "rewritten":
                    console.print(f"[dim]→ {escape(item.question)}[/dim]")
                elif isinstance(item, RetrievalStarted):
                    console.print(f"[dim]  searching: {escape(' | '.join(item.queries))}[/dim]")
                elif isinstance(item, SentenceAccepted):
                    cited = ", ".join(title or pid for pid, title in zip(item.passages, item.titles))
                    line = f"[{shade(item.confidence)}]{escape(item.text)}[/{shade(item.confidence)}]"
                    conf = f"{item.confidence:.2f}" if item.confidence is not None else "?"
                    console.print(f"{line} [dim]({conf}{'; ' + escape(cited) if cited else ''})[/dim]")
                elif isinstance(item, Finished):
                    console.print(
                        f"[bold]Answer:[/bold] {escape(item.answer)} [dim](confidence {item.confidence:.2f}, "
                        f"{item.counts.retrievals} retrievals)[/dim]"
                    )
        except GatedRAGError as err:  # a bad message or a failed turn: say so, the conversation goes on
            console.print(f"[red]error:[/red] {escape(str(err))}")
        except KeyboardInterrupt:  # Ctrl-C stops the answer being written, not the chat
            console.print("[dim](answer stopped)[/dim]")


__all__ = ["run_chat", "shade"]
