"""Fuzzing gatedrag's public entries with hypothesis: every input ends in an answer, a typed
refusal, or (a bug) a crash — counted.

An :class:`Entry` is a name, a hypothesis strategy of inputs and a function that feeds one input
to the entry. :func:`classify` sorts what the function did: ``ok`` (it returned), ``refused`` (it
raised a :class:`~gatedrag.errors.GatedRAGError`, or a server answered with a well-formed error)
or ``crash`` (anything else: an untyped exception, a server's 500, a malformed response, a server
that stopped serving). :func:`fuzz` runs an entry on ``n`` inputs and reports the counts; the
benchmark (``benchmarks/bench_reliability.py fuzz``) runs every entry on 10,000 and the tests a
fixed-seed subset that fails on the first crash, shrunk by hypothesis.

The strategies here are the shared part: :func:`junk` (any JSON-like value, including lone
surrogates, control characters, NaN and huge numbers), :func:`config_documents` (YAML / TOML /
random text, and the default config with values replaced), :func:`jsonl_files` (lines that are
valid records, records of the wrong types, random text and bytes).

Example:
    >>> from hypothesis import strategies as st
    >>> from gatedrag.errors import InputError
    >>> def entry_fn(x):
    ...     if not x:
    ...         raise InputError("empty")
    >>> report = fuzz(Entry(name="demo", inputs=st.text(max_size=3), run=entry_fn), n=20, seed=0)
    >>> report.tried, report.crashes
    (20, 0)
"""

from __future__ import annotations

import json
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from gatedrag.errors import GatedRAGError

OutcomeKind = Literal["ok", "refused", "crash"]


class Outcome(BaseModel):
    """What one input did: ``name`` is the error type (or HTTP status) that refused or crashed it."""

    kind: OutcomeKind
    name: str = "ok"
    detail: str = ""
    site: str = ""
    """Where a crash was raised: the innermost frame in gatedrag's own code (``file:line``)."""


class Refused(Exception):
    """Raised by an entry function for a well-formed refusal that is not a Python error (an HTTP
    error response with its error object): counted as ``refused`` under its message."""


class Crashed(Exception):
    """Raised by an entry function for a malformed outcome that is not a Python error (a server's
    500, a response that is not JSON, a server that stopped answering)."""


@dataclass(frozen=True)
class Entry:
    """One public entry: its inputs and how one is fed to it."""

    name: str
    inputs: st.SearchStrategy[Any]
    run: Callable[[Any], object]


class EntryReport(BaseModel):
    """The outcomes of fuzzing one entry."""

    entry: str
    tried: int = 0
    ok: int = 0
    refused: dict[str, int] = Field(default_factory=dict)
    """Typed refusals by error type (or HTTP status)."""
    crashes: int = 0
    crash_sites: dict[str, int] = Field(default_factory=dict)
    """Crashes by error type and where it was raised (distinct bugs, roughly)."""
    crash_examples: list[str] = Field(default_factory=list)
    """The first crashing input of each site, with the error's last lines."""
    seconds: float = 0.0


def classify(fn: Callable[[], object]) -> Outcome:
    """Run ``fn`` and sort what it did."""
    try:
        fn()
    except Refused as err:
        return Outcome(kind="refused", name=str(err))
    except Crashed as err:
        return Outcome(kind="crash", name="Crashed", detail=str(err), site=str(err)[:48])
    except GatedRAGError as err:
        return Outcome(kind="refused", name=type(err).__name__)
    except Exception as err:
        tail = "".join(traceback.format_exception(err)[-3:])
        return Outcome(kind="crash", name=type(err).__name__, detail=tail, site=_site(err))
    return Outcome(kind="ok")


def _site(err: BaseException) -> str:
    """The innermost frame of ``err``'s traceback in gatedrag's or evals' code, else the last one."""
    frames = traceback.extract_tb(err.__traceback__)
    ours = [f for f in frames if "/gatedrag/" in f.filename or "/evals/" in f.filename] or frames[-1:]
    if not ours:
        return ""
    f = ours[-1]
    return f"{'/'.join(f.filename.split('/')[-2:])}:{f.lineno}"


class _Stop(Exception):
    """Ends a fuzz run at its first crash (``stop_on_crash``): hypothesis then shrinks the input."""


def fuzz(entry: Entry, *, n: int, seed: int = 0, stop_on_crash: bool = False, keep: int = 10) -> EntryReport:
    """Feed ``entry`` ``n`` generated inputs (fixed ``seed``). With ``stop_on_crash`` the first crash
    raises ``AssertionError`` with the smallest crashing input hypothesis finds (for tests)."""
    report = EntryReport(entry=entry.name)
    refused: Counter[str] = Counter()
    sites: Counter[str] = Counter()
    start = time.perf_counter()

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink] if stop_on_crash else [Phase.generate],
        print_blob=False,
    )
    @hypothesis_seed(seed)
    @given(entry.inputs)
    def one(value: Any) -> None:
        outcome = classify(lambda: entry.run(value))
        report.tried += 1
        if outcome.kind == "ok":
            report.ok += 1
        elif outcome.kind == "refused":
            refused[outcome.name] += 1
        else:
            report.crashes += 1
            site = f"{outcome.name} at {outcome.site or '?'}"
            sites[site] += 1
            if sites[site] == 1 and len(report.crash_examples) < keep:
                report.crash_examples.append(f"{value!r:.300}\n{outcome.name}: {outcome.detail}")
            if stop_on_crash:
                raise _Stop(f"{entry.name} crashed on {value!r:.500}: {outcome.name}\n{outcome.detail}")

    try:
        one()
    except _Stop as err:
        raise AssertionError(str(err)) from None
    report.refused = dict(refused.most_common())
    report.crash_sites = dict(sites.most_common())
    report.seconds = round(time.perf_counter() - start, 2)
    return report


# -- strategies ---------------------------------------------------------------------------------
_ODD_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF), max_size=20),
    st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, codec=None), min_size=1, max_size=3),
    st.sampled_from(["", " ", "\x00", "\n\n", "\u202e", "😀" * 50, "a" * 5000, "Question:", "the answer is"]),
)
"""Text a user may send: anything Unicode holds, lone surrogates, control characters, very long."""


def odd_text() -> st.SearchStrategy[str]:
    return _ODD_TEXT


def junk(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Any JSON-like value (and a few that JSON cannot hold: NaN, infinities, huge integers)."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        _ODD_TEXT,
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_ODD_TEXT, inner, max_size=4)),
        max_leaves=max_leaves,
    )


def _paths(tree: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path of a nested dict/list (the places a mutation can go)."""
    out = [prefix]
    if isinstance(tree, dict):
        for k, v in tree.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            out += _paths(v, (*prefix, i))
    return out


def _replaced(tree: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(tree, dict):
        return {**tree, head: _replaced(tree[head], rest, value)}
    copy = list(tree)
    copy[head] = _replaced(copy[head], rest, value)
    return copy


@st.composite
def mutated(draw: st.DrawFn, base: Any, max_changes: int = 3) -> Any:
    """``base`` (a valid document) with up to ``max_changes`` values replaced by :func:`junk` or by
    values of the other fields (wrong types that look plausible), or keys added."""
    tree = base
    leaves = [v for p in _paths(base) if p for v in [_at(base, p)] if not isinstance(v, dict | list)]
    for _ in range(draw(st.integers(min_value=1, max_value=max_changes))):
        paths = _paths(tree)
        path = draw(st.sampled_from(paths))
        how = draw(st.sampled_from(["junk", "other", "add"]))
        if how == "add" and isinstance(_at(tree, path), dict):
            tree = _replaced(tree, path, {**_at(tree, path), draw(_ODD_TEXT): draw(junk(4))})
        elif how == "other" and leaves:
            tree = _replaced(tree, path, draw(st.sampled_from(leaves)))
        else:
            tree = _replaced(tree, path, draw(junk(6)))
    return tree


def _at(tree: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        tree = tree[p]
    return tree


def _dump(value: Any, fmt: str) -> bytes:
    """``value`` as a document in ``fmt`` (``yaml``, ``toml``, ``json``); its repr if it cannot be."""
    try:
        if fmt == "yaml":
            return yaml.safe_dump(value, allow_unicode=True).encode("utf-8", "surrogatepass")
        if fmt == "json":
            return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
        return _toml(value).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError, yaml.YAMLError):
        return repr(value).encode("utf-8", "surrogatepass")


def _toml(value: Any) -> str:
    """A rough TOML rendering of a nested mapping (sections and key = JSON value): valid for most
    generated documents, and malformed ones are inputs too."""
    if not isinstance(value, dict):
        return json.dumps(value)
    lines: list[str] = []

    def section(name: str, table: dict[str, Any]) -> None:
        if name:
            lines.append(f"[{name}]")
        for k, v in table.items():
            if not isinstance(v, dict):
                lines.append(f"{json.dumps(str(k))} = {json.dumps(v)}")
        for k, v in table.items():
            if isinstance(v, dict):
                section(f"{name}.{json.dumps(str(k))}" if name else json.dumps(str(k)), v)

    section("", value)
    return "\n".join(lines)


@st.composite
def config_documents(draw: st.DrawFn, base: dict[str, Any]) -> tuple[str, bytes]:
    """A config file: (suffix, bytes) — ``base`` mutated, or random structure, or random bytes,
    as YAML or TOML."""
    suffix = draw(st.sampled_from([".yaml", ".toml"]))
    kind = draw(st.sampled_from(["mutated", "mutated", "junk", "bytes"]))
    if kind == "bytes":
        return suffix, draw(st.binary(max_size=200))
    value = draw(mutated(base)) if kind == "mutated" else draw(junk())
    return suffix, _dump(value, "toml" if suffix == ".toml" else "yaml")


@st.composite
def jsonl_files(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]], max_lines: int = 8) -> bytes:
    """A JSONL file: valid records, records mutated into wrong types, random JSON, text and bytes,
    blank lines."""
    lines: list[bytes] = []
    for _ in range(draw(st.integers(min_value=0, max_value=max_lines))):
        kind = draw(st.sampled_from(["valid", "valid", "valid", "mutated", "junk", "text", "bytes", "blank"]))
        if kind == "valid":
            lines.append(_dump(draw(valid), "json"))
        elif kind == "mutated":
            lines.append(_dump(draw(mutated(draw(valid), max_changes=2)), "json"))
        elif kind == "junk":
            lines.append(_dump(draw(junk(6)), "json"))
        elif kind == "text":
            lines.append(draw(_ODD_TEXT).replace("\n", " ").encode("utf-8", "surrogatepass"))
        elif kind == "bytes":
            lines.append(draw(st.binary(max_size=40)).replace(b"\n", b" "))
        else:
            lines.append(b"")
    return b"\n".join(lines) + draw(st.sampled_from([b"\n", b""]))


def passages_json() -> st.SearchStrategy[dict[str, Any]]:
    """A valid corpus record."""
    return st.fixed_dictionaries(
        {"id": st.text(min_size=1, max_size=8), "text": _ODD_TEXT}, optional={"title": st.text(max_size=20)}
    )


def claims_json() -> st.SearchStrategy[dict[str, Any]]:
    """A valid claims-file record."""
    return st.fixed_dictionaries({"id": st.text(min_size=1, max_size=8), "claim": _ODD_TEXT})


__all__ = [
    "Crashed",
    "Entry",
    "EntryReport",
    "Outcome",
    "Refused",
    "claims_json",
    "classify",
    "config_documents",
    "fuzz",
    "jsonl_files",
    "junk",
    "mutated",
    "odd_text",
    "passages_json",
]
