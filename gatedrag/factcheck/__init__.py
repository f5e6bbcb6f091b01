"""Fact-checking: claim -> verdict (supported / refuted / not enough info), evidence and a calibrated
confidence, retrieving only for doubtful claims (PCC's certainty and consistency, anchors §6).

:mod:`~gatedrag.factcheck.claims` (claims in, validated), :mod:`~gatedrag.factcheck.certainty` and
:mod:`~gatedrag.factcheck.verdict` (the model's certainty τ about a one-word verdict, closed book or
with evidence), :mod:`~gatedrag.factcheck.consistency` (γ from rationales for and against),
:mod:`~gatedrag.factcheck.corpus` (the claim's entities and their co-occurrence in the corpus),
:mod:`~gatedrag.factcheck.routing` (PCC's four routes), :mod:`~gatedrag.factcheck.sentences`
(rationale sentence indices), :mod:`~gatedrag.factcheck.checker` (the :class:`FactChecker` that runs
them, batched, with its event trace, :mod:`~gatedrag.factcheck.events`; its settings in
:mod:`~gatedrag.factcheck.config`) and :mod:`~gatedrag.factcheck.batch` (a claims file to a
resumable records file). ``gatedrag check`` is the command line; ``benchmarks/bench_factcheck.py``
tunes the routing and the calibration on SciFact's training claims."""
