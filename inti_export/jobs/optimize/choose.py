"""The choice: among candidates that ran and passed the gate, the best on the objective within the budget.

Every candidate not chosen gets its reason in `Choice.excluded` (docs/optimize.md, "Choice").
"""

from __future__ import annotations

from inti_export.jobs.optimize.report import Candidate, Choice
from inti_export.runtime.timing import LatencyRow
from inti_export.vocab import Objective, Status

# Throughputs within 2 % of the highest are a tie (run-to-run noise here is 1-3 %, docs/benchmarks.md):
# among them the lowest p50 wins, so one session with every thread beats N sessions that are no faster.
THROUGHPUT_TIE = 0.02


def usable_rows(c: Candidate, max_latency_ms: float | None) -> list[LatencyRow]:
    """The candidate's batch sizes whose p50 is within the budget."""
    return [r for r in c.speed if max_latency_ms is None or r.p50_ms <= max_latency_ms]


def best_row(rows: list[LatencyRow], objective: str) -> LatencyRow:
    """The batch size that serves `objective` best: highest clips/s, or lowest p50 (smaller batch on a tie)."""
    if objective == Objective.latency.value:
        return min(rows, key=lambda r: (r.p50_ms, r.batch))
    return max(rows, key=lambda r: (r.throughput_clips_s, -r.batch))


def choose(candidates: list[Candidate], objective: str, max_latency_ms: float | None) -> Choice:
    """The best candidate on `objective` among those that ran, passed the gate and meet the budget."""
    excluded: dict[str, str] = {}
    options: list[tuple[Candidate, LatencyRow]] = []
    for c in candidates:
        if c.status != Status.ok.value:
            excluded[c.id] = f"{c.status}: {c.reason}"
        elif c.gate is None or not c.gate.passed:
            excluded[c.id] = "fails the accuracy gate: " + "; ".join(c.gate.failures if c.gate else ["no accuracy"])
        elif not usable_rows(c, max_latency_ms):
            fastest = min(r.p50_ms for r in c.speed)
            excluded[c.id] = f"p50 over --max-latency-ms {max_latency_ms} at every batch (fastest {fastest:.1f} ms)"
        else:
            options.append((c, best_row(usable_rows(c, max_latency_ms), objective)))
    if not options:
        why = "; ".join(f"{cid}: {text}" for cid, text in excluded.items())
        return Choice(None, reason=f"no candidate ran, passed the accuracy gate and met the latency budget ({why})",
                      excluded=excluded)
    if objective == Objective.latency.value:
        best, row = min(options, key=lambda o: (o[1].p50_ms, o[0].id))
    else:
        top = max(r.throughput_clips_s for _, r in options)
        tied = [o for o in options if o[1].throughput_clips_s >= (1 - THROUGHPUT_TIE) * top]
        best, row = min(tied, key=lambda o: (o[1].p50_ms, -o[1].throughput_clips_s, o[0].id))
    for c, r in options:
        if c is not best:
            excluded[c.id] = (f"passes, but {r.throughput_clips_s:.3g} clips/s at batch {r.batch} (p50 {r.p50_ms:.1f} ms)"
                              f" against {row.throughput_clips_s:.3g} clips/s (p50 {row.p50_ms:.1f} ms)")
    budget = f" with p50 <= {max_latency_ms} ms" if max_latency_ms is not None else ""
    what = "highest throughput" if objective == Objective.throughput.value else "lowest p50 latency"
    reason = (f"{what}{budget} among the {len(options)} candidate(s) that passed the accuracy gate"
              f" ({best.gate.rule}): {row.throughput_clips_s:.3g} clips/s, p50 {row.p50_ms:.1f} ms at batch {row.batch};"
              f" cosine min {best.accuracy.cosine_min:.6f}, top-1 {best.accuracy.top1_agreement:.3f}"
              + (f", top-1 against the labels {100 * best.accuracy.label_top1:.2f}%"
                 if best.accuracy.label_top1 is not None else ""))
    return Choice(best.id, best.runner, best.precision, row.batch, row.p50_ms, row.throughput_clips_s, reason, excluded,
                  variant=best.variant, settings=dict(best.settings), label=best.label)
