"""The OpenAI API's request bodies as far as ``gatedrag serve`` implements them (validated; an
unsupported option is refused, not ignored)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gatedrag.text import holds_lone_surrogate


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")  # clients send options they do not need answered (user, ...)

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    seed: int | None = Field(default=None, ge=0)
    stop: str | list[str] | None = None
    stream: bool = False
    n: int = Field(default=1, ge=1, le=1)
    """One choice a request (several: send several requests)."""

    @model_validator(mode="before")
    @classmethod
    def _unicode(cls, data: Any) -> Any:
        if holds_lone_surrogate(data):
            raise ValueError("the request holds text that is not valid Unicode (a lone surrogate escape)")
        return data

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        if isinstance(v, list) and len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        return v

    @property
    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return tuple(s for s in ([self.stop] if isinstance(self.stop, str) else self.stop) if s)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[dict] | None = None


class ChatCompletionRequest(_Request):
    messages: list[ChatMessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    stream_options: StreamOptions | None = None
    tools: list[dict] | None = None

    @field_validator("tools")
    @classmethod
    def _no_tools(cls, v: list[dict] | None) -> list[dict] | None:
        if v:
            raise ValueError("this server calls no tools")
        return v


class CompletionRequest(_Request):
    prompt: str | list[str]
    logprobs: int | None = Field(default=None, ge=0, le=20)
    """The legacy API: how many alternatives a token (``None``: no log-probabilities)."""
    echo: bool = False
    stream_options: StreamOptions | None = None

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, v: bool) -> bool:
        if v:
            raise ValueError("echo is not supported (the prompt is not scored)")
        return v


__all__ = ["ChatCompletionRequest", "ChatMessageIn", "CompletionRequest", "StreamOptions"]
