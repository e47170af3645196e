"""benchmarks/gpu_suite.sh with a `python3` shim: every stage's failure is reported and the suite goes on;
a stage that only skipped says SKIP; a stage past the deadline is cut and the rest are skipped."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

SUITE = Path(__file__).parents[2] / "benchmarks" / "gpu_suite.sh"
STAGES = re.findall(r"^stage (\w+) ", SUITE.read_text(), re.M)
SHIM = """#!/usr/bin/env bash
# Stands in for python3 in gpu_suite.sh: acts by the stage that runs it (INTI_GPU_STAGE).
case "$INTI_GPU_STAGE" in
  "$SHIM_FAIL") echo "Traceback: boom"; exit 1 ;;
  "$SHIM_SKIP") echo "SKIP: no such thing here"; exit 77 ;;
  "$SHIM_PYTEST_SKIPS") echo "s.s"; echo "3 skipped, 1 deselected in 0.02s"; exit 0 ;;
  "$SHIM_PYTEST_NONE") echo "no tests ran in 0.01s"; exit 5 ;;
  "$SHIM_HANG") sleep 30 ;;
  "$SHIM_PARTIAL") echo "skipped torch-kernel: triton does not import"; exit 0 ;;
esac
if [[ "$*" == *pytest* ]]; then echo "2 passed, 1 skipped in 0.1s"; fi
exit 0
"""


def run_suite(tmp_path: Path, deadline: int = 540, **shim: str) -> tuple[int, list[str], str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python3").write_text(SHIM)
    (bin_dir / "python3").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIM_")}
    env.update({f"SHIM_{k.upper()}": v for k, v in shim.items()}, PATH=f"{bin_dir}:{env['PATH']}",
               GPU_SUITE_DEADLINE=str(deadline), GPU_SUITE_MIN_STAGE="1")
    out = tmp_path / "results"
    proc = subprocess.run(["bash", str(SUITE), str(out)], env=env, capture_output=True, text=True, timeout=120)
    return proc.returncode, (out / "checks.txt").read_text().splitlines(), proc.stdout


def verdicts(lines: list[str]) -> dict[str, str]:
    return {line.split()[1]: line.split()[0] for line in lines}


def test_stages_are_listed():
    assert {"env", "kernel", "blend", "stream", "parity", "torch_fp16", "gpu_tests", "aot_entry"} <= set(STAGES)
    assert len(STAGES) == len(set(STAGES))


def test_all_pass(tmp_path):
    rc, lines, stdout = run_suite(tmp_path)
    assert rc == 0, stdout
    assert verdicts(lines) == dict.fromkeys(STAGES, "PASS")
    assert "(pytest: 2 passed, 1 skipped in 0.1s)" in next(line for line in lines if " gpu_tests " in line)
    assert f"checks: {len(STAGES)} passed, 0 failed, 0 skipped" in stdout


@pytest.mark.parametrize("failing", STAGES)
def test_each_failure_is_reported_and_the_suite_goes_on(tmp_path, failing):
    rc, lines, _ = run_suite(tmp_path, fail=failing)
    assert rc == 1
    assert verdicts(lines) == {s: "FAIL" if s == failing else "PASS" for s in STAGES}
    line = next(line for line in lines if line.split()[1] == failing)
    assert "exit 1" in line
    assert "Traceback: boom" in (tmp_path / "results" / f"{failing}.txt").read_text()


def test_skips_are_skips(tmp_path):
    rc, lines, _ = run_suite(tmp_path, skip="ort_cuda", pytest_skips="gpu_tests", pytest_none="kernel")
    assert rc == 0
    got = verdicts(lines)
    assert got["ort_cuda"] == got["gpu_tests"] == got["kernel"] == "SKIP"
    assert {got[s] for s in STAGES if s not in ("ort_cuda", "gpu_tests", "kernel")} == {"PASS"}
    text = "\n".join(lines)
    assert "SKIP ort_cuda" in text and "(no such thing here)" in text
    assert "(pytest: 3 skipped, 1 deselected in 0.02s)" in text and "(pytest collected no test)" in text


def test_a_bench_that_skipped_a_runner_fails(tmp_path):
    rc, lines, _ = run_suite(tmp_path, partial="torch_fp16")
    assert rc == 1
    line = next(line for line in lines if line.split()[1] == "torch_fp16")
    assert line.startswith("FAIL") and "measured only in part: skipped torch-kernel: triton does not import" in line


def test_deadline_cuts_a_hanging_stage_and_skips_the_rest(tmp_path):
    rc, lines, _ = run_suite(tmp_path, deadline=3, hang="env")
    assert rc == 1
    got = verdicts(lines)
    assert got["env"] == "FAIL" and "timed out after" in lines[0]
    assert {got[s] for s in STAGES[1:]} == {"SKIP"} and "no time left" in lines[1]
