"""Backend calls that end in time: a time limit on any call, retries with backoff where a retry can help.

A call runs on a daemon thread and is waited for at most ``timeout_s``; past it
:class:`~gatedrag.errors.BackendTimeout` is raised and the thread is left to finish on its own
(Python cannot stop a thread; its result is discarded). A call that raised is tried again after
``backoff_s`` (doubled each time) while time is left; bad input (an :class:`InputError`,
a :class:`ConfigError`) and a timeout are not retried: they would fail the same way.

Example:
    >>> import time
    >>> from gatedrag.config import BackendLimits
    >>> from gatedrag.guard import call_within, guarded
    >>> call_within(lambda: 42, 1.0, "the answer")
    42
    >>> call_within(lambda: time.sleep(5), 0.05, "a sleeper")
    Traceback (most recent call last):
    ...
    gatedrag.errors.BackendTimeout: a sleeper did not answer within 0.05 s
    >>> tries = []
    >>> def flaky():
    ...     tries.append(1)
    ...     if len(tries) < 2:
    ...         raise ConnectionError("reset")
    ...     return "ok"
    >>> guarded(flaky, BackendLimits(retries=1, backoff_s=0.0), "a flaky store"), len(tries)
    ('ok', 2)
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from gatedrag.config import BackendLimits
from gatedrag.errors import BackendTimeout, ConfigError, InputError

T = TypeVar("T")

_NOT_RETRIED: tuple[type[BaseException], ...] = (BackendTimeout, InputError, ConfigError)


def call_within(fn: Callable[[], T], timeout_s: float, what: str) -> T:
    """``fn()``, or :class:`BackendTimeout` naming ``what`` if it takes longer than ``timeout_s``
    seconds (it raises what ``fn`` raised)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        try:
            future.set_result(fn())
        except BaseException as err:  # handed to the caller
            future.set_exception(err)

    threading.Thread(target=run, name=f"gatedrag-call:{what}", daemon=True).start()
    try:
        return future.result(timeout=max(0.0, timeout_s))
    except concurrent.futures.TimeoutError:
        raise BackendTimeout(f"{what} did not answer within {timeout_s:.3g} s") from None


def guarded(fn: Callable[[], T], limits: BackendLimits, what: str, *, budget_s: float | None = None) -> T:
    """``fn()`` within ``limits.timeout_s`` (or ``budget_s``, if less: the time a turn has left)
    in all, retried ``limits.retries`` times with backoff if it raises something a retry can
    help; the last error is raised."""
    total = limits.timeout_s if budget_s is None else max(0.0, min(limits.timeout_s, budget_s))
    end = time.monotonic() + total
    wait = limits.backoff_s
    for attempt in range(limits.retries + 1):
        try:
            return call_within(fn, max(0.0, end - time.monotonic()), what)
        except _NOT_RETRIED:
            raise
        except Exception:
            if attempt == limits.retries or time.monotonic() + wait >= end:
                raise
        time.sleep(wait)
        wait *= 2
    raise AssertionError("unreachable")  # pragma: no cover


__all__ = ["call_within", "guarded"]
