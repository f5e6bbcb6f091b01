"""The fact checker as a LangChain Runnable: a claim in, a verdict out (``invoke`` / ``batch`` and
their async twins), every event of the check dispatched as the custom event
``gatedrag_factcheck_<type>`` (``..._routed`` carries τ, γ and their thresholds; ``..._searched``
the passages).

Input: the claim (``str``), or a dict with ``claim`` (``input`` / ``query`` are read too). Output: a
dict with ``label`` (supported / refuted / nei), ``confidence``, ``route``, ``searches``,
``evidence`` (id, title, sentence indices), ``rationale`` and the whole verdict under ``gatedrag``
(:func:`verdict_of` reads it back). One checker checks one call at a time; ``batch`` checks its
inputs together.

Example:
    >>> from helpers.factlm import FactLM
    >>> from gatedrag.connectors.langchain.factcheck import FactCheckRunnable, verdict_of
    >>> from gatedrag.factcheck.checker import FactChecker
    >>> checker = FactChecker(FactLM(closed={"Water": [(" False", 0.9), (" True", 0.05)]}), None)
    >>> out = FactCheckRunnable.from_checker(checker).invoke("Water boils at 90 C.")
    >>> out["label"], out["route"], verdict_of(out).searches
    ('refuted', 'direct', 0)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from typing import Any

from langchain_core.callbacks import CallbackManagerForChainRun
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.runnables import RunnableConfig, RunnableSerializable, ensure_config
from pydantic import ConfigDict, PrivateAttr

from gatedrag.errors import InputError
from gatedrag.factcheck.checker import FactChecker
from gatedrag.factcheck.events import FactCheckEvent, Verdict

EVENT_PREFIX = "gatedrag_factcheck_"


def parse_claim(value: Any) -> str:
    """The claim of a Runnable input (a string, or a dict with ``claim`` / ``input`` / ``query``)."""
    if isinstance(value, Mapping):
        key = next((k for k in ("claim", "input", "query") if k in value), None)
        if key is None:
            raise InputError(f"a fact-check input needs 'claim' (got keys {sorted(value)})")
        value = value[key]
    if not isinstance(value, str):
        raise InputError(f"a claim must be a string, got {type(value).__name__}")
    return value


def to_output(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the dict :class:`FactCheckRunnable` returns."""
    return {
        "label": verdict.label,
        "confidence": verdict.confidence,
        "route": verdict.route,
        "searches": verdict.searches,
        "evidence": [
            {"id": e.passage.id, "title": e.passage.title, "sentences": e.sentences} for e in verdict.evidence
        ],
        "rationale": verdict.rationale,
        "degraded": verdict.degraded,
        "gatedrag": verdict.model_dump(mode="json"),
    }


def verdict_of(output: Mapping[str, Any]) -> Verdict:
    """The whole :class:`~gatedrag.factcheck.events.Verdict` back from a Runnable output."""
    return Verdict.model_validate(output["gatedrag"])


class FactCheckRunnable(RunnableSerializable[Any, dict]):
    """gatedrag's fact checker as a LangChain Runnable (see the module's docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _checker: FactChecker | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @classmethod
    def from_checker(cls, checker: FactChecker) -> FactCheckRunnable:
        if not isinstance(checker, FactChecker):
            raise InputError(f"not a FactChecker: {type(checker).__name__}")
        out = cls()
        out._checker = checker
        return out

    @property
    def checker(self) -> FactChecker:
        if self._checker is None:
            raise InputError("build the Runnable with FactCheckRunnable.from_checker(checker)")
        return self._checker

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return self._call_with_config(self._invoke, input, ensure_config(config), run_type="chain", **kwargs)

    def _invoke(self, value: Any, run_manager: CallbackManagerForChainRun, config: RunnableConfig) -> dict[str, Any]:
        claim = parse_claim(value)
        with self._lock:
            verdict = self.checker.check(claim, on_event=lambda _, e: _dispatch(e, config))
        return to_output(verdict)

    def batch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        if not inputs:
            return []
        return self._batch_with_config(
            self._batch, inputs, config, return_exceptions=return_exceptions, run_type="chain", **kwargs
        )

    def _batch(
        self, inputs: list[Any], run_manager: list[CallbackManagerForChainRun], config: list[RunnableConfig]
    ) -> list[dict[str, Any] | Exception]:
        out: list[dict[str, Any] | Exception] = []
        claims: list[tuple[int, str]] = []
        for i, value in enumerate(inputs):
            try:
                claims.append((i, parse_claim(value)))
                out.append({})
            except InputError as err:  # a bad input fails alone
                out.append(err)
        if claims:
            with self._lock:
                try:
                    verdicts: list[Verdict | Exception] = list(
                        self.checker.batch(
                            [c for _, c in claims], on_event=lambda j, e: _dispatch(e, config[claims[j][0]])
                        )
                    )
                except InputError:  # a claim the checker refuses: every claim of the batch alone
                    verdicts = [_alone(self.checker, c, config[i]) for i, c in claims]
            for (i, _), verdict in zip(claims, verdicts):
                out[i] = verdict if isinstance(verdict, Exception) else to_output(verdict)
        return out

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(None, lambda: self.invoke(input, config, **kwargs))

    async def abatch(
        self,
        inputs: list[Any],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            None, lambda: self.batch(inputs, config, return_exceptions=return_exceptions, **kwargs)
        )


def _dispatch(event: FactCheckEvent, config: RunnableConfig) -> None:
    dispatch_custom_event(EVENT_PREFIX + event.type, event.model_dump(mode="json"), config=config)


def _alone(checker: FactChecker, claim: str, config: RunnableConfig) -> Verdict | Exception:
    try:
        return checker.check(claim, on_event=lambda _, e: _dispatch(e, config))
    except InputError as err:
        return err


__all__ = ["EVENT_PREFIX", "FactCheckRunnable", "parse_claim", "to_output", "verdict_of"]
