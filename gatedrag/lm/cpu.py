"""What the CPU can do, read without importing torch.

Example:
    >>> from gatedrag.lm.cpu import native_bf16
    >>> isinstance(native_bf16(), bool)
    True
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@cache
def cpu_flags() -> frozenset[str]:
    """The feature flags of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX-512 BF16 or AMX): there transformers runs
    the model in bfloat16; elsewhere it falls back to float32, and llama.cpp is faster."""
    return bool(cpu_flags() & _BF16_FLAGS)


__all__ = ["cpu_flags", "native_bf16"]
