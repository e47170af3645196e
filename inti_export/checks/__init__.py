"""The gates and their reports: compare (per-output tolerances), parity (one loop over runners), evaluate
(labelled accuracy and its gate), accuracy (what parity and eval share: LabelAccuracy, each runner's status)."""
