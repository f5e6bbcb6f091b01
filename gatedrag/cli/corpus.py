"""``gatedrag corpus ...`` (serve, count, info) and the Infini-gram half of ``gatedrag index build``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from gatedrag.cli.common import console, err_console, user_errors, warn_if_exposed

corpus_app = typer.Typer(no_args_is_help=True, help="Corpus statistics: serve and query Infini-gram indexes.")


def build_corpus_index(
    corpus: Path, out: Path | None, *, tokenizer: str, shard_tokens: int | None, include_title: bool
) -> None:
    """Build the Infini-gram index of ``corpus`` with a progress bar and report its size."""
    from gatedrag.corpus.build import build_index, default_corpus_index_dir
    from gatedrag.retrieval.corpus import corpus_sha256

    directory = out or default_corpus_index_dir(corpus_sha256(corpus), tokenizer)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(phase: str, done: int, total: int) -> None:
            label = {"tokenize": "Tokenizing passages", "suffix-array": "Building suffix arrays"}[phase]
            if phase not in tasks:
                tasks[phase] = bar.add_task(label, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        manifest = build_index(
            corpus,
            directory,
            tokenizer=tokenizer,
            shard_tokens=shard_tokens,
            include_title=include_title,
            progress=progress,
        )
    mb = manifest.size_bytes / 1e6
    console.print(
        f"Infini-gram index: {manifest.documents:,} passages, {manifest.tokens:,} {manifest.tokenizer.name} tokens, "
        f"{manifest.shards} shard(s), {mb:.1f} MB ({manifest.size_bytes / max(manifest.tokens, 1):.2f} B/token) "
        f"in {manifest.build_seconds:.1f} s → {directory}"
    )


def build_dense_index(corpus: Path, out: Path | None) -> None:
    """Embed ``corpus`` into its FAISS index with a progress bar and report its size."""
    import time

    from gatedrag.retrieval.dense import DenseRetriever, default_dense_index_dir
    from gatedrag.retrieval.embed import MiniLMEmbedder

    t0 = time.perf_counter()
    with err_console.status("Loading the embedding model…"):
        embedder = MiniLMEmbedder()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err_console, transient=True) as bar:
        task = bar.add_task("Embedding passages", total=None)
        retriever = DenseRetriever.from_corpus(
            corpus,
            embedder,
            index_dir=out,
            rebuild=True,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    directory = out or default_dense_index_dir(retriever.corpus_sha256, embedder.name)
    console.print(
        f"Embedded {len(retriever.passages):,} passages ({embedder.name}, {embedder.dim}-d) in "
        f"{time.perf_counter() - t0:.1f} s → {directory}"
    )


@corpus_app.command("serve")
def serve(
    index: Annotated[Path, typer.Argument(help="Index directory (as built by `gatedrag index build`).")],
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port).")] = 8737,
    host: Annotated[str, typer.Option(help="Address to bind; the default only accepts local clients.")] = "127.0.0.1",
    name: Annotated[str | None, typer.Option(help="Index name clients send (default: the directory name).")] = None,
    max_diff_tokens: Annotated[int, typer.Option(help="Largest co-occurrence window a request may ask.")] = 1000,
    max_clause_freq: Annotated[int, typer.Option(help="Largest max_clause_freq a request may ask.")] = 500_000,
    load_to_ram: Annotated[bool, typer.Option(help="Read the index into RAM instead of memory-mapping it.")] = False,
    verbose: Annotated[bool, typer.Option(help="Log every request to stderr.")] = False,
) -> None:
    """Serve INDEX over HTTP in the Infini-gram API's request/response format."""
    from gatedrag.corpus.api import Caps
    from gatedrag.corpus.server import make_server

    with user_errors():
        caps = Caps(max_diff_tokens=max_diff_tokens, max_clause_freq=max_clause_freq)
        try:
            server = make_server(
                index, host=host, port=port, name=name, caps=caps, verbose=verbose, load_to_ram=load_to_ram
            )
        except OSError as err:
            from gatedrag.errors import CorpusBackendError

            raise CorpusBackendError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    warn_if_exposed(host, "the corpus server")
    info = server.handler.info()
    console.print(
        f"Serving index [bold]{info['index']}[/bold] ({info['documents']:,} passages, {info['tokens']:,} tokens, "
        f"tokenizer {info['tokenizer']}) at {server.url} — Ctrl-C stops"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@corpus_app.command("count")
def count(
    index: Annotated[str, typer.Argument(help="Index directory, or an http(s) URL of an Infini-gram API.")],
    terms: Annotated[list[str], typer.Argument(help="One phrase to count, or several to count co-occurring.")],
    window: Annotated[
        int | None, typer.Option(help="Co-occurrence window in tokens (default: about a passage).")
    ] = None,
    api_index: Annotated[str | None, typer.Option(help="Index name to send to an API URL.")] = None,
) -> None:
    """Count a phrase (or the co-occurrence of several) in a corpus index."""
    with user_errors():
        if index.startswith(("http://", "https://")):
            from gatedrag.corpus.client import InfiniGramClient

            stats = InfiniGramClient(index, index=api_index)
            if window is None:
                window = 1000
        else:
            from gatedrag.corpus.local import LocalIndex

            stats = LocalIndex(index)  # type: ignore[assignment]
        result = stats.count(terms[0]) if len(terms) == 1 else stats.cooccurrence(terms, window=window)
    approx = " (approximate)" if result.approx else ""
    where = f" within {result.window} tokens" if result.window else ""
    console.print(f"{result.query}: [bold]{result.count:,}[/bold]{approx}{where}  [dim]{result.latency_ms} ms[/dim]")


@corpus_app.command("info")
def info(index: Annotated[Path, typer.Argument(help="Index directory.")]) -> None:
    """Show what an index holds (its manifest)."""
    from gatedrag.corpus.manifest import read_manifest

    with user_errors():
        directory, manifest = read_manifest(index)
    console.print(f"[bold]{directory}[/bold]")
    console.print_json(manifest.model_dump_json())


__all__ = ["build_corpus_index", "corpus_app"]
