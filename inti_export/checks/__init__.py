"""The gates and their reports: compare (per-output tolerances), parity (one loop over runners), evaluate
(labelled accuracy)."""
