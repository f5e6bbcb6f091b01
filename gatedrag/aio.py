"""A blocking iterator (a model writing) consumed from asyncio without blocking the event loop.

Example:
    >>> import asyncio
    >>> from gatedrag.aio import iterate_in_thread
    >>> async def main():
    ...     return [x async for x in iterate_in_thread(x for x in [1, 2, 3])]
    >>> asyncio.run(main())
    [1, 2, 3]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


async def iterate_in_thread(generator: Generator[T, None, None]) -> AsyncIterator[T]:
    """Each item of ``generator``, fetched in a worker thread; the generator is closed (in a worker
    thread too) when the consumer stops, so that its own clean-up runs."""
    try:
        while (item := await asyncio.to_thread(next, generator, _DONE)) is not _DONE:
            yield item  # type: ignore[misc]
    finally:
        await asyncio.to_thread(generator.close)


__all__ = ["iterate_in_thread"]
