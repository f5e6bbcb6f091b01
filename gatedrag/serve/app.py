"""``gatedrag serve``: the local model behind an OpenAI-compatible HTTP API.

``/v1/chat/completions`` (the model's own chat template) and ``/v1/completions`` (raw prompts), with
``logprobs`` / ``top_logprobs`` (at most 20), ``stop``, ``max_tokens``, ``temperature``, ``top_p``,
``seed`` and streaming (server-sent events, ``data: [DONE]`` at the end), and ``/v1/models``.
Concurrent requests are batched onto the model (:class:`~gatedrag.serve.engine.Engine`). Bad
requests get OpenAI-style error objects (400 invalid, 404 unknown model, 413 too large, 429 busy,
500 a failure), and no request takes the server down.

Example:
    >>> from fastapi.testclient import TestClient
    >>> from gatedrag.serve.app import create_app
    >>> from helpers.scripted import ScriptedLM
    >>> client = TestClient(create_app(ScriptedLM([("Paris.", 0.9)], []), model_name="scripted"))
    >>> body = {"model": "scripted", "messages": [{"role": "user", "content": "Capital?"}], "temperature": 0}
    >>> r = client.post("/v1/chat/completions", json=body)
    >>> r.json()["choices"][0]["message"]["content"]
    'Paris.'
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gatedrag.errors import InputError
from gatedrag.lm.base import LanguageModel
from gatedrag.lm.chat import (
    ChatMessage,
    Completion,
    chat_prompt,
    chat_stops,
    gap,
    openai_logprob,
    template_of,
    text_content,
)
from gatedrag.lm.sampling import Sampling
from gatedrag.types import Sentence, TokenStep

from .engine import Engine, EngineBusy, Job
from .schema import ChatCompletionRequest, CompletionRequest


class ServeLimits(BaseModel):
    """What one request may ask for."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_request_bytes: int = Field(default=1_000_000, ge=1024)
    max_tokens: int = Field(default=1024, ge=1)
    """The most new tokens a request may ask for."""
    default_chat_tokens: int = Field(default=512, ge=1)
    """``max_tokens`` of a chat request that gives none (the completions API's default is 16)."""
    max_batch: int = Field(default=8, ge=1, le=256)
    max_pending: int = Field(default=64, ge=1)
    batch_window_s: float = Field(default=0.05, ge=0.0, le=5.0)
    """How long the first waiting request waits for others to be decoded with it."""
    timeout_s: float = Field(default=600.0, gt=0)
    """A request still unanswered after this long fails (504)."""


class APIError(Exception):
    """An error answered as OpenAI's error object."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code

    def response(self) -> JSONResponse:
        body = {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status)


def chat_logprobs(tokens: list[TokenStep], top: int) -> dict[str, Any]:
    """``choices[i].logprobs`` of the chat API."""
    return {"content": [openai_logprob(t, top) for t in tokens]}


def completion_logprobs(tokens: list[TokenStep], top: int, offset: int = 0) -> dict[str, Any]:
    """``choices[i].logprobs`` of the (legacy) completions API."""
    offsets, pos = [], offset
    for t in tokens:
        offsets.append(pos)
        pos += len(t.text)
    return {
        "tokens": [t.text for t in tokens],
        "token_logprobs": [t.logprob for t in tokens],
        "top_logprobs": [{a.text: a.logprob for a in t.top[:top]} for t in tokens],
        "text_offset": offsets,
    }


def _leading(tokens: list[TokenStep]) -> str:
    raw = "".join(t.text for t in tokens)
    return raw[: len(raw) - len(raw.lstrip())]


def create_app(
    lm: LanguageModel, *, model_name: str, limits: ServeLimits | None = None, engine: Engine | None = None
) -> FastAPI:
    """The OpenAI-compatible API over ``lm`` (see the module doc)."""
    limits = limits or ServeLimits()
    engine = engine or Engine(
        lm, max_batch=limits.max_batch, max_pending=limits.max_pending, batch_window_s=limits.batch_window_s
    )
    created = int(time.time())
    top_limit = lm.capabilities.top_k
    app = FastAPI(title="gatedrag", version="0.1.0")
    app.state.engine = engine

    @app.exception_handler(APIError)
    async def _api_error(_: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:  # 404, 405: same error object
        code = {404: "not_found", 405: "method_not_allowed"}.get(err.status_code)
        return APIError(err.status_code, str(err.detail), code=code).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, err: RequestValidationError) -> JSONResponse:
        first = err.errors()[0] if err.errors() else {"msg": "invalid request", "loc": ()}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return APIError(400, f"{first['msg']}" + (f" ({param})" if param else ""), param=param).response()

    @app.exception_handler(Exception)
    async def _failed(_: Request, err: Exception) -> JSONResponse:
        return APIError(500, f"the server failed: {type(err).__name__}: {err}", kind="server_error").response()

    @app.middleware("http")
    async def _size_limit(request: Request, call_next: Any) -> Any:
        size = request.headers.get("content-length")
        if request.method == "POST" and size is not None and not size.isdigit():
            return APIError(
                400, f"Content-Length {size[:20]!r} is not a byte count", code="bad_content_length"
            ).response()
        if request.method == "POST" and size is not None and int(size) > limits.max_request_bytes:
            return APIError(
                413, f"request body over {limits.max_request_bytes} bytes", code="request_too_large"
            ).response()
        return await call_next(request)

    def model_card() -> dict[str, Any]:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "gatedrag"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{model_id}")
    async def model(model_id: str) -> dict[str, Any]:
        if model_id != model_name:
            raise APIError(
                404,
                f"the model {model_id!r} does not exist (this server serves {model_name!r})",
                code="model_not_found",
            )
        return model_card()

    def check(req: Any, prompt: str, max_tokens: int) -> None:
        if req.model != model_name:
            raise APIError(
                404,
                f"the model {req.model!r} does not exist (this server serves {model_name!r})",
                param="model",
                code="model_not_found",
            )
        if max_tokens > limits.max_tokens:
            raise APIError(
                400, f"max_tokens {max_tokens} is over this server's limit of {limits.max_tokens}", param="max_tokens"
            )
        n = lm.count_tokens(prompt)
        if n + max_tokens > lm.context_length:
            raise APIError(
                400,
                f"the prompt ({n} tokens) and max_tokens ({max_tokens}) exceed the model's context of {lm.context_length}",
                param="messages",
                code="context_length_exceeded",
            )

    def sampling(req: Any) -> Sampling | None:
        if req.temperature == 0:
            return None
        return Sampling(
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed if req.seed is not None else uuid.uuid4().int % 2**31,
        )

    async def run(job: Job) -> Completion:
        try:
            future = engine.submit(job)
        except EngineBusy as err:
            raise APIError(429, f"the server is busy: {err}", kind="rate_limit_error", code="busy") from None
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout=limits.timeout_s)
        except TimeoutError:
            future.cancel()
            raise APIError(
                504, f"no answer within {limits.timeout_s:g} s", kind="server_error", code="timeout"
            ) from None
        except InputError as err:
            raise APIError(400, str(err)) from None

    def usage(c: Completion) -> dict[str, int]:
        n = len(c.tokens)
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": n, "total_tokens": c.prompt_tokens + n}

    def stream(job: Job, chunk: Any, final: Any, include_usage: bool) -> EventSourceResponse:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Sentence] = asyncio.Queue()
        job.on_piece = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)

        async def events() -> AsyncIterator[dict[str, str]]:
            task = asyncio.ensure_future(run(job))
            previous: Sentence | None = None
            getter: asyncio.Future[Sentence] | None = None
            try:
                for first in chunk(None, None):
                    yield {"data": json.dumps(first)}
                while not (task.done() and pieces.empty()):
                    getter = asyncio.ensure_future(pieces.get())
                    done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()
                        continue
                    piece = getter.result()
                    for out in chunk(previous, piece):
                        yield {"data": json.dumps(out)}
                    previous = piece
                try:
                    c = task.result()
                except APIError as err:
                    yield {
                        "data": json.dumps(
                            {"error": {"message": str(err), "type": err.kind, "param": err.param, "code": err.code}}
                        )
                    }
                    return
                except Exception as err:
                    yield {
                        "data": json.dumps(
                            {
                                "error": {
                                    "message": f"{type(err).__name__}: {err}",
                                    "type": "server_error",
                                    "param": None,
                                    "code": None,
                                }
                            }
                        )
                    }
                    return
                for out in final(c, include_usage):
                    yield {"data": json.dumps(out)}
                yield {"data": "[DONE]"}
            finally:  # the client may have gone: nothing is left waiting, the row stops decoding
                job.abandoned.set()
                if getter is not None and not getter.done():
                    getter.cancel()
                if not task.done():
                    task.cancel()

        return EventSourceResponse(events(), ping=15)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(req: ChatCompletionRequest) -> Any:
        try:
            messages = [
                ChatMessage(role="system" if m.role == "developer" else m.role, content=text_content(m.content))
                for m in req.messages
            ]
            prompt = chat_prompt(messages, template=template_of(lm))
        except InputError as err:
            raise APIError(400, str(err), param="messages") from None
        max_tokens = req.max_completion_tokens or req.max_tokens or min(limits.default_chat_tokens, limits.max_tokens)
        check(req, prompt, max_tokens)
        top = min(req.top_logprobs or 0, top_limit)
        stops = tuple(dict.fromkeys(req.stops + chat_stops(template_of(lm))))
        job = Job(prompt=prompt, max_tokens=max_tokens, stop=stops, sampling=sampling(req))
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def base(**choice: Any) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": now,
                "model": model_name,
                "choices": [{"index": 0, **choice}],
            }

        if req.stream:

            def chunk(previous: Sentence | None, piece: Sentence | None) -> list[dict[str, Any]]:
                if piece is None:
                    return [base(delta={"role": "assistant", "content": ""}, logprobs=None, finish_reason=None)]
                lp = chat_logprobs(piece.tokens, top) if req.logprobs else None
                return [base(delta={"content": gap(previous, piece) + piece.text}, logprobs=lp, finish_reason=None)]

            def final(c: Completion, include_usage: bool) -> list[dict[str, Any]]:
                out = [base(delta={}, logprobs=None, finish_reason=c.finish_reason)]
                if include_usage:
                    out.append({**base(), "choices": [], "usage": usage(c)})
                return out

            return stream(job, chunk, final, bool(req.stream_options and req.stream_options.include_usage))
        c = await run(job)
        return {
            "id": rid,
            "object": "chat.completion",
            "created": now,
            "model": model_name,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": chat_logprobs(c.tokens, top) if req.logprobs else None,
                    "finish_reason": c.finish_reason,
                }
            ],
            "usage": usage(c),
        }

    @app.post("/v1/completions", response_model=None)
    async def completions(req: CompletionRequest) -> Any:
        prompts = [req.prompt] if isinstance(req.prompt, str) else req.prompt
        if not prompts or any(not p for p in prompts):
            raise APIError(400, "the prompt is empty", param="prompt")
        max_tokens = req.max_tokens or min(16, limits.max_tokens)
        for p in prompts:
            check(req, p, max_tokens)
        top = min(req.logprobs or 0, top_limit)
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def body(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
            return {
                "id": rid,
                "object": "text_completion",
                "created": now,
                "model": model_name,
                "choices": choices,
                **extra,
            }

        if req.stream:
            if len(prompts) > 1:
                raise APIError(400, "stream one prompt a request", param="prompt")
            job = Job(prompt=prompts[0], max_tokens=max_tokens, stop=req.stops, sampling=sampling(req))

            def chunk(previous: Sentence | None, piece: Sentence | None) -> list[dict[str, Any]]:
                if piece is None:
                    return []
                text = (_leading(piece.tokens) if previous is None else gap(previous, piece)) + piece.text
                lp = completion_logprobs(piece.tokens, top) if req.logprobs is not None else None
                return [body([{"index": 0, "text": text, "logprobs": lp, "finish_reason": None}])]

            def final(c: Completion, include_usage: bool) -> list[dict[str, Any]]:
                out = [body([{"index": 0, "text": "", "logprobs": None, "finish_reason": c.finish_reason}])]
                if include_usage:
                    out.append(body([], usage=usage(c)))
                return out

            return stream(job, chunk, final, bool(req.stream_options and req.stream_options.include_usage))
        jobs = [Job(prompt=p, max_tokens=max_tokens, stop=req.stops, sampling=sampling(req)) for p in prompts]
        done = await asyncio.gather(*(run(j) for j in jobs))
        choices = [
            {
                "index": i,
                "text": _leading(c.tokens) + c.text,
                "logprobs": completion_logprobs(c.tokens, top) if req.logprobs is not None else None,
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(done)
        ]
        total = {k: sum(usage(c)[k] for c in done) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
        return body(choices, usage=total)

    return app


__all__ = ["APIError", "ServeLimits", "chat_logprobs", "completion_logprobs", "create_app"]
