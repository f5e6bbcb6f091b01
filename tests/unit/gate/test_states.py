"""The answer's phases: the transition table, and that no phase is left without a way to finish."""

from __future__ import annotations

from gatedrag.gate.state import TRANSITIONS, WRITING, Phase, can_finish


def test_every_phase_has_its_row_and_a_way_to_finish():
    assert set(TRANSITIONS) == set(Phase)
    assert all(targets <= set(Phase) for targets in TRANSITIONS.values())
    assert all(can_finish(p) for p in Phase)
    assert TRANSITIONS[Phase.FINISHED] == frozenset()


def test_writing_phases_reach_every_action_and_waiting_phases_come_back_to_writing():
    waiting = set(Phase) - WRITING - {Phase.FINISHED}
    for phase in waiting:
        assert TRANSITIONS[phase] & WRITING, phase  # a retrieval or restart resumes writing
    for phase in WRITING:
        assert Phase.FINISHED in TRANSITIONS[phase]
    assert Phase.ADJUSTING in TRANSITIONS[Phase.ANSWERING] and Phase.SEARCHING in TRANSITIONS[Phase.ANSWERING]
    # hysteresis: a rewrite cannot itself be rewritten under control before it is accepted or retrieved for
    assert Phase.ADJUSTING not in TRANSITIONS[Phase.CONTROLLED]
    # a draft only ever leaves by abandoning it (retrieval) or finishing
    assert TRANSITIONS[Phase.DRAFTING] == {Phase.DRAFTING, Phase.RETRIEVING, Phase.FINISHED}


def test_can_finish_detects_a_trap():
    table = dict(TRANSITIONS)
    try:
        TRANSITIONS[Phase.RESTARTING] = frozenset({Phase.RESTARTING})
        assert not can_finish(Phase.RESTARTING)
    finally:
        TRANSITIONS.clear()
        TRANSITIONS.update(table)
