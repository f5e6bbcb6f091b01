"""Fact-checking: claim -> verdict (supported / refuted / not enough info), evidence and a calibrated
confidence, retrieving only for doubtful claims (PCC's certainty and consistency, anchors §6).
Built in pieces so far: :mod:`~gatedrag.factcheck.claims` (claims in, validated),
:mod:`~gatedrag.factcheck.certainty` and :mod:`~gatedrag.factcheck.verdict` (the model's certainty τ
about a one-word verdict, closed book or with evidence), :mod:`~gatedrag.factcheck.consistency`
(γ from rationales for and against), :mod:`~gatedrag.factcheck.routing` (PCC's four routes),
:mod:`~gatedrag.factcheck.checker` (the :class:`FactChecker` that runs them, batched, with its event
trace, :mod:`~gatedrag.factcheck.events`). To come: calibrated confidence, evidence sentence indices,
the corpus signal, tuning on training claims, the CLI and the SciFact evaluation."""
