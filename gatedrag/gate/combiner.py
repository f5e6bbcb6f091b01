"""The combined score: a logistic model over the features of a candidate answer (its sentence's
signals, P(True), agreement with the other candidates, the rung that wrote it), then a calibration
map, giving the probability that the candidate is right (0 to 1).

Fitted by ``gatedrag tune --combiner`` on questions outside the evaluated ones and stored as JSON
(never pickle). A file fitted on other features is refused.

Example:
    >>> c = Combiner(features=["p_true", "agreement"], weights=[2.0, 1.0], bias=-1.5,
    ...              mean=[0.5, 0.5], scale=[0.25, 0.5])
    >>> round(c.probability({"p_true": 0.9, "agreement": 1.0}), 3)
    0.937
    >>> round(c.probability({"p_true": 0.9}), 3)  # a missing feature sits at its mean
    0.846
    >>> Combiner.model_validate_json(c.model_dump_json()) == c
    True
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gatedrag.errors import ConfigError


class Calibration(BaseModel):
    """A monotone map from the logistic model's probability to the calibrated one: isotonic steps
    (``x`` ascending, ``y`` non-decreasing, linear between knots) or Platt's ``sigmoid(a*logit+b)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["isotonic", "platt"]
    x: list[float] = Field(default_factory=list)
    y: list[float] = Field(default_factory=list)
    a: float = 1.0
    b: float = 0.0

    @model_validator(mode="after")
    def _knots(self) -> Calibration:
        if self.kind == "isotonic":
            if not self.x or len(self.x) != len(self.y):
                raise ValueError("isotonic calibration needs as many y as x knots (at least one)")
            if any(b < a for a, b in zip(self.x, self.x[1:])) or any(b < a for a, b in zip(self.y, self.y[1:])):
                raise ValueError("isotonic knots must be non-decreasing")
        return self

    def __call__(self, p: float) -> float:
        if self.kind == "platt":
            logit = math.log(max(p, 1e-9) / max(1 - p, 1e-9))
            return 1 / (1 + math.exp(-(self.a * logit + self.b)))
        if p <= self.x[0]:
            return self.y[0]
        if p >= self.x[-1]:
            return self.y[-1]
        i = bisect.bisect_right(self.x, p)
        x0, x1, y0, y1 = self.x[i - 1], self.x[i], self.y[i - 1], self.y[i]
        return y0 if x1 == x0 else y0 + (y1 - y0) * (p - x0) / (x1 - x0)


class Combiner(BaseModel):
    """Logistic regression on standardised features, then ``calibration`` (see the module doc)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal[1] = 1
    features: list[str] = Field(min_length=1)
    weights: list[float]
    bias: float
    mean: list[float]
    scale: list[float]
    calibration: Calibration | None = None
    fitted: dict[str, Any] = Field(default_factory=dict)
    """Where it was fitted: datasets, questions, candidates, the fit's own scores."""

    @model_validator(mode="after")
    def _shapes(self) -> Combiner:
        n = len(self.features)
        if not (len(self.weights) == len(self.mean) == len(self.scale) == n):
            raise ValueError(f"{n} features need {n} weights, means and scales")
        if len(set(self.features)) != n:
            raise ValueError("features must be distinct")
        if any(s <= 0 for s in self.scale):
            raise ValueError("scales must be positive")
        return self

    def raw(self, features: Mapping[str, float]) -> float:
        """The logistic model's probability, before calibration."""
        z = self.bias
        for name, w, mu, sd in zip(self.features, self.weights, self.mean, self.scale):
            value = features.get(name)
            if value is not None and math.isfinite(value):
                z += w * (value - mu) / sd
        return 1 / (1 + math.exp(-max(-50.0, min(50.0, z))))

    def probability(self, features: Mapping[str, float]) -> float:
        """The calibrated probability that the candidate is right."""
        p = self.raw(features)
        return self.calibration(p) if self.calibration is not None else p

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, expect_features: Sequence[str] | None = None) -> Combiner:
        """Read a combiner file; refuse one that is unreadable, malformed, or fitted on features
        other than ``expect_features`` (what this pipeline computes)."""
        path = Path(path)
        try:
            combiner = cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"combiner file not found: {path} (fit one with `gatedrag tune --combiner`)") from None
        except (OSError, ValidationError, ValueError) as err:
            raise ConfigError(f"{path} is not a gatedrag combiner: {str(err).splitlines()[0]}") from None
        if expect_features is not None and set(combiner.features) - set(expect_features):
            extra = sorted(set(combiner.features) - set(expect_features))
            raise ConfigError(
                f"{path} was fitted on features this pipeline does not compute ({', '.join(extra)}); refit it"
            )
        return combiner


__all__ = ["Calibration", "Combiner"]
