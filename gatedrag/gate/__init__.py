from gatedrag.gate.policy import Gate, build_signal

__all__ = ["Gate", "build_signal"]
