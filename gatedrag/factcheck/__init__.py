"""Fact-checking: claim -> verdict (supported / refuted / not enough info), evidence and a calibrated
confidence, retrieving only for doubtful claims (PCC's certainty and consistency, anchors §6).
Built in pieces: :mod:`gatedrag.factcheck.certainty` (the model's certainty about a verdict)."""
