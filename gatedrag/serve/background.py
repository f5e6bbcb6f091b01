"""An ASGI app served by uvicorn on a thread of this process: for tests, benchmarks and notebooks
that need a real socket (``gatedrag serve`` itself runs uvicorn in the foreground).

Example::

    from gatedrag.serve.app import create_app
    from gatedrag.serve.background import serving
    with serving(create_app(lm, model_name="m")) as url:   # http://127.0.0.1:PORT/v1
        ...
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def serving(app: Any, *, host: str = "127.0.0.1", log_level: str = "warning") -> Iterator[str]:
    """``app`` on a free port of ``host`` until the block ends; yields its ``/v1`` URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level=log_level, timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


__all__ = ["serving"]
