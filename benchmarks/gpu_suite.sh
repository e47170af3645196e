#!/usr/bin/env bash
# The GPU checks and measurements in one run (docs/benchmarks.md, "GPU"): on a CUDA machine with this
# package importable, `bash benchmarks/gpu_suite.sh [RESULTS_DIR]` (default gpu-results/).
#
# Every stage runs, whatever an earlier one did, under its own time limit and within the suite's
# deadline (GPU_SUITE_DEADLINE seconds, default 540): a stage with under GPU_SUITE_MIN_STAGE seconds
# (default 10) left is SKIPped.
# Each stage's output is RESULTS_DIR/<stage>.txt (and .json where it measures); RESULTS_DIR/checks.txt
# has one line per stage:
#   PASS  it ran and every check in it passed
#   FAIL  it failed or timed out, or a bench skipped a runner (the line says which; the output file why)
#   SKIP  it could not run here (exit 77 with the reason, or pytest ran no test / only skipped)
# The suite exits 1 if any stage FAILed, else 0. Stages call only `python3`: the suite's own test
# (tests/benchmarks/test_gpu_suite.py) replaces it with a shim that fails each stage in turn, and reads
# INTI_GPU_STAGE, which names the stage running.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
out=${1:-${GPU_RESULTS:-gpu-results}}
deadline=${GPU_SUITE_DEADLINE:-540}
min_stage=${GPU_SUITE_MIN_STAGE:-10}  # seconds a stage needs at least, else it is skipped
mkdir -p "$out"
: > "$out/checks.txt"
failed=0

verdict_of() {  # verdict_of RC OUTPUT_FILE -> "PASS", "SKIP ..." or "FAIL ..."
  local rc=$1 file=$2 summary
  summary=$(grep -E '^(=+ )?[0-9]+ (passed|failed|skipped|deselected|error)' "$file" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')
  case $rc in
    0) if grep -qE '^(skipped|failed) ' "$file"; then echo "FAIL (measured only in part: $(grep -m1 -E '^(skipped|failed) ' "$file"))"
       elif [[ -n $summary && $summary != *passed* ]]; then echo "SKIP (pytest: $summary)"
       else echo "PASS${summary:+ (pytest: $summary)}"; fi ;;
    5) echo "SKIP (pytest collected no test)" ;;
    77) echo "SKIP ($(grep -m1 '^SKIP' "$file" | sed 's/^SKIP:* *//'))" ;;
    124|137) echo "FAIL (timed out)" ;;
    *) echo "FAIL (exit $rc${summary:+; pytest: $summary})" ;;
  esac
}

stage() {  # stage NAME SECONDS COMMAND...: run it, record PASS/FAIL/SKIP, never stop the suite
  local name=$1 limit=$2 rc verdict started=$SECONDS
  shift 2
  local left=$((deadline - SECONDS))
  if ((left < min_stage)); then
    echo "SKIP $name (no time left: the suite's deadline is ${deadline} s)" | tee -a "$out/checks.txt"
    return
  fi
  ((limit > left)) && limit=$left
  INTI_GPU_STAGE=$name timeout --kill-after=10 "$limit" "$@" > "$out/$name.txt" 2>&1
  rc=$?
  verdict=$(verdict_of "$rc" "$out/$name.txt")
  [[ $verdict == FAIL* ]] && failed=1
  if [[ $verdict == "FAIL (timed out)" ]]; then verdict="FAIL (timed out after $limit s)"; fi
  echo "${verdict%% *} $name ($((SECONDS - started)) s)${verdict#"${verdict%% *}"}" | tee -a "$out/checks.txt"
}

# `timeout` runs programs, not shell functions: the stages' commands are arrays.
checks=(python3 benchmarks/gpu_checks.py)
bench=(python3 -m inti_export.cli bench --preset inti-b16 --device cuda --batch 1,8 --iters 50 --warmup 10 --compare-naive)
results() { echo --report "$out/$1.json" --plot "$out/$1.png"; }

# Most important first: if the lease runs out, what ran is kept.
stage env 60 "${checks[@]}" env --out "$out"                # GPU, capability, versions
stage kernel 180 "${checks[@]}" kernel --out "$out"          # Triton kernel and the op's CUDA path vs the reference
stage blend 180 "${checks[@]}" blend --out "$out"            # bandwidth vs a device copy, time vs the unfused ops
stage stream 150 "${checks[@]}" stream --out "$out"          # stem + head vs the whole window; per window at stride 4
stage parity 180 "${checks[@]}" parity --out "$out"          # CUDA runners vs the CPU FP32 reference, shipped clips
stage torch_fp16 150 "${bench[@]}" --precision fp16 --runners torch,torch-kernel $(results torch_fp16)
stage torch_fp32 150 "${bench[@]}" --precision fp32 --runners torch,torch-kernel $(results torch_fp32)
stage gpu_tests 240 python3 -m pytest -q -rs -m gpu -p no:cacheprovider tests/plugins tests/runtime tests/models
stage aot_entry 120 "${checks[@]}" aot-entry --out "$out"    # the AOT kernel's PTX entry and shared memory here
stage compile_fp16 240 "${bench[@]}" --precision fp16 --runners torch-compile $(results compile_fp16)
stage compile_fp32 240 "${bench[@]}" --precision fp32 --runners torch-compile $(results compile_fp32)
stage ort_cuda 150 "${checks[@]}" ort-cuda --out "$out"      # ONNX Runtime's CUDA provider, with onnxruntime-gpu
stage trt_rtx 120 "${checks[@]}" trt-rtx --out "$out"        # TensorRT-RTX's answer on this GPU, where it imports
echo "checks: $(grep -c '^PASS' "$out/checks.txt") passed, $(grep -c '^FAIL' "$out/checks.txt") failed, $(grep -c '^SKIP' "$out/checks.txt") skipped"
exit $failed
