"""The ``gatedrag`` command line (typer): ``ask``, ``chat``, ``check``, ``serve``, ``index build``, ``corpus``,
``eval``, ``report``, ``tune``.

Errors a user can cause (bad question, missing corpus, bad config) are printed without a
traceback and exit with status 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from gatedrag.cli.chat import run_chat
from gatedrag.cli.check import run_check
from gatedrag.cli.common import console, err_console, load_pipeline, status_progress, warn_if_exposed
from gatedrag.cli.common import quiet_libraries as _quiet_libraries
from gatedrag.cli.common import user_errors as _user_errors
from gatedrag.cli.corpus import build_corpus_index, build_dense_index, corpus_app
from gatedrag.cli.evaluation import run_eval, run_report, run_tune
from gatedrag.types import Answer, SignalValue

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Uncertainty-gated retrieval-augmented generation.")
index_app = typer.Typer(no_args_is_help=True, help="Build retrieval indexes.")
app.add_typer(index_app, name="index")
app.add_typer(corpus_app, name="corpus")
app.command("eval")(run_eval)
app.command("report")(run_report)
app.command("tune")(run_tune)
app.command("chat")(run_chat)
app.command("check")(run_check)


def _signal_cell(v: SignalValue) -> str:
    """``name=value``; red with ``>threshold`` when it crossed and acts, dim "(traced)" when it
    crossed but is configured not to act."""
    if not v.fired or v.threshold is None:
        return f"{v.name}={v.value:.3g}"
    if v.acting:
        return f"[red]{v.name}={v.value:.3g}>{v.threshold:.3g}[/red]"
    return f"[dim]{v.name}={v.value:.3g}>{v.threshold:.3g} (traced)[/dim]"


def _steps_table(answer: Answer) -> Table:
    table = Table(title="Trace", show_lines=False, header_style="bold")
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("text / query")
    table.add_column("signals (value > threshold)")
    table.add_column("decision")
    for s in answer.steps:
        if s.kind in ("sentence", "question"):
            sig = ", ".join(_signal_cell(v) for v in s.signals)
            infos = [f"{v.name}: {v.info or v.note}" for v in s.signals if v.info or v.note]
            if infos:
                sig += "\n[dim]" + "\n".join(infos) + "[/dim]"
            decision = s.decision.action if s.decision else ""
            if s.decision and s.decision.note:
                decision += f" ({s.decision.note})"
            text = s.text if s.accepted or s.kind == "question" else f"[dim strike]{s.text}[/dim strike]"
            kind = f"{s.kind} ({s.trigger})" if s.trigger else s.kind  # draft, regenerated, ...
            table.add_row(str(s.index), kind, text, sig, decision)
        else:
            passages = ", ".join(f"{p.title} ({p.score:.1f})" for p in s.passages)
            if s.carried:
                passages += f" + {len(s.carried)} earlier"
            if s.note:
                passages += f" [dim]({s.note})[/dim]"
            detail = f"[yellow]{s.error}[/yellow]" if s.error else passages
            table.add_row(str(s.index), f"retrieval ({s.trigger})", f"[cyan]{s.query}[/cyan]", detail, "")
    return table


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to bind (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[
        str | None, typer.Option(help="Model name, .gguf file or directory (default: the config's).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML or TOML config file (its model section is used).")] = None,
    backend: Annotated[str | None, typer.Option(help="Model backend: auto, hf or llamacpp.")] = None,
    max_batch: Annotated[int, typer.Option(help="Requests decoded together.", min=1)] = 8,
    max_tokens: Annotated[int, typer.Option(help="The most new tokens a request may ask for.", min=1)] = 1024,
) -> None:
    """Serve the local model as an OpenAI-compatible API (/v1/chat/completions, /v1/completions, /v1/models)."""
    from gatedrag.config import PipelineConfig, load_config
    from gatedrag.errors import ConfigError

    with _user_errors():
        cfg = load_config(config) if config else PipelineConfig()
        update: dict[str, str] = {}
        if model is not None:
            update["name"] = model
        if backend is not None:
            update["backend"] = backend
        mc = cfg.model.model_validate(cfg.model.model_dump() | update)
        if mc.backend in ("openai", "topk"):
            raise ConfigError(f"gatedrag serve runs a local model: model.backend {mc.backend} cannot be served")
        try:
            import uvicorn

            from gatedrag.serve.app import ServeLimits, create_app
        except ImportError:
            raise ConfigError("gatedrag serve needs its extra: pip install 'gatedrag[serve]'") from None
        _quiet_libraries()
        from gatedrag.factory import build_model

        with err_console.status("Loading the model…") as status:
            lm = build_model(mc, progress=status_progress(status))
        limits = ServeLimits(max_batch=max_batch, max_tokens=max_tokens)
        app_ = create_app(lm, model_name=mc.name, limits=limits)
    warn_if_exposed(host, "gatedrag serve")
    err_console.print(f"Serving {mc.name} on http://{host}:{port}/v1 (OpenAI-compatible; Ctrl-C stops)")
    uvicorn.run(app_, host=host, port=port, log_level="warning")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    corpus: Annotated[
        Path | None, typer.Option(help="JSONL corpus to retrieve from (default: the demo corpus).")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML or TOML config file.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the answer and its trace as JSON.")] = False,
    backend: Annotated[
        str | None, typer.Option(help="Model backend: auto, hf, llamacpp, topk or openai (overrides the config).")
    ] = None,
) -> None:
    """Answer QUESTION, retrieving only for the sentences the model is unsure of."""
    from gatedrag.pipeline import validate_question

    with _user_errors():
        validate_question(question)
        rag = load_pipeline(config, corpus=corpus, backend=backend)
        with err_console.status("Answering…"):
            answer = rag.ask(question)
    if json_out:  # the answer with its events, and the steps derived from them
        data = answer.model_dump(mode="json") | {"steps": [step.model_dump(mode="json") for step in answer.steps]}
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    console.print(_steps_table(answer))
    c = answer.counts
    console.print(
        f"[bold]Answer:[/bold] {answer.answer}   [dim](confidence {answer.confidence:.2f}; "
        f"{c.retrievals} retrievals, {c.llm_calls} LLM calls, {c.generated_tokens} tokens, {c.wall_time_s:.1f} s; "
        f"backend {rag.config.model.backend})[/dim]"
    )
    console.print(f"[dim]{answer.text}[/dim]")


@index_app.command("build")
def index_build(
    corpus: Annotated[Path, typer.Argument(help="JSONL corpus: one {id, title, text} object a line.")],
    out: Annotated[Path | None, typer.Option(help="BM25 index directory (default: in the gatedrag cache).")] = None,
    corpus_stats: Annotated[
        bool,
        typer.Option(help="Also build the Infini-gram index the corpus-statistics signals read (needs infini-gram)."),
    ] = True,
    corpus_index: Annotated[
        Path | None, typer.Option(help="Infini-gram index directory (default: in the gatedrag cache).")
    ] = None,
    tokenizer: Annotated[
        str, typer.Option(help="Infini-gram tokenizer: gpt2, bytes, or a Hugging Face tokenizer directory.")
    ] = "gpt2",
    shard_tokens: Annotated[
        int | None, typer.Option(help="Tokens per Infini-gram shard (default: what fits in about 40% of RAM).")
    ] = None,
    titles: Annotated[bool, typer.Option(help="Index each passage's title with its text (Infini-gram).")] = True,
    dense: Annotated[
        bool,
        typer.Option(
            help="Also embed the corpus into the FAISS index of retrieval.backend dense/hybrid (gatedrag[dense])."
        ),
    ] = False,
    dense_index: Annotated[
        Path | None, typer.Option(help="FAISS index directory (default: in the gatedrag cache).")
    ] = None,
) -> None:
    """Build (or rebuild) the BM25 index of CORPUS, its Infini-gram index of corpus statistics and,
    with --dense, its FAISS index of passage embeddings."""
    import time

    from gatedrag.corpus.build import infinigram_available
    from gatedrag.retrieval.bm25 import BM25Retriever, default_index_dir

    t0 = time.perf_counter()
    with _user_errors(), err_console.status(f"Indexing {corpus}…"):
        retriever = BM25Retriever.from_corpus(corpus, index_dir=out, rebuild=True)
    directory = out or default_index_dir(retriever.corpus_sha256)
    console.print(f"Indexed {len(retriever.passages):,} passages in {time.perf_counter() - t0:.1f} s → {directory}")
    if dense:
        with _user_errors():
            build_dense_index(corpus, dense_index)
    if not corpus_stats:
        return
    if not infinigram_available():
        err_console.print(
            "[yellow]Skipped the Infini-gram index: the infini-gram package is not installed "
            "(pip install 'gatedrag[corpus]'; wheels exist for Linux x86_64 and macOS arm64, CPython 3.11-3.13).[/yellow]"
        )
        return
    with _user_errors():
        build_corpus_index(corpus, corpus_index, tokenizer=tokenizer, shard_tokens=shard_tokens, include_title=titles)


def main() -> None:
    """Console-script entry point."""
    app()


__all__ = ["app", "main"]
