#!/usr/bin/env bash
# The GPU measurements the issues ask for, in one script (run on a CUDA machine; ~5 min on an H100).
# Results land in ${OUT:-gpu-results}/ as JSON; copy the medians into docs/benchmarks.md with the GPU's name.
#   - fused blend kernel vs reference vs a device copy (issue 5)
#   - PyTorch eager / torch.compile / fused-kernel route, FP32 and FP16, naive vs InTI, batch 1 and 8 (issue 7)
#   - ORT CUDA when onnxruntime-gpu is importable (pip install 'inti-export[gpu]', or staged wheels)
set -euo pipefail
out=${OUT:-gpu-results}
mkdir -p "$out"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA GPU'; print(torch.cuda.get_device_name(0))"
python3 benchmarks/bench_blend_kernel.py > "$out/blend_kernel.json"
python3 -m pytest -q tests/plugins -m "not slow" 2>&1 | tail -3 | tee "$out/plugin_tests.txt"
for precision in fp32 fp16; do
  inti-export bench --preset inti-b16 --device cuda --precision "$precision" \
    --runners torch,torch-kernel,torch-compile --batch 1,8 --iters 50 --warmup 10 --compare-naive \
    --report "$out/torch_${precision}.json" --plot "$out/torch_${precision}.png"
done
if python3 -c "import onnxruntime as o, sys; sys.exit('CUDAExecutionProvider' not in o.get_available_providers())"; then
  inti-export bench --preset inti-b16 --runners ort-cuda --batch 1,8 --iters 50 --warmup 10 --compare-naive \
    --report "$out/ort_cuda_fp32.json"
fi
