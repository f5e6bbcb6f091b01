"""The gate: signals computed into bundles (:class:`Gate`), and the policy that turns a bundle and
the answer's state into one typed action (:class:`Policy`)."""

from gatedrag.gate.actions import Action, FollowUp, Veto
from gatedrag.gate.bundle import SignalBundle
from gatedrag.gate.evaluator import Gate
from gatedrag.gate.policy import LADDER, Policy
from gatedrag.gate.state import TRANSITIONS, AnswerState, Phase
from gatedrag.signals.registry import build_signal

__all__ = [
    "LADDER",
    "TRANSITIONS",
    "Action",
    "AnswerState",
    "FollowUp",
    "Gate",
    "Phase",
    "Policy",
    "SignalBundle",
    "Veto",
    "build_signal",
]
