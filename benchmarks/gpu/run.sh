#!/usr/bin/env bash
# Run ON THE GPU MACHINE through the device tool (see README.md): installs the carried wheels and EGL
# libraries, then
#   bash benchmarks/gpu/run.sh        runs the CUDA tests and measures everything of gpu_bench.py into $OUT (~8 min)
#   bash benchmarks/gpu/run.sh dmc    learns DMC from pixels with dmc_learn.py into $OUT (TOTAL_S, default 500 s)
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYTHONUNBUFFERED=1
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
if [ "${1:-bench}" = dmc ]; then
  python3 benchmarks/gpu/dmc_learn.py --out "$OUT" --total-s "${TOTAL_S:-500}" 2>&1 \
    | grep -v "DeprecationWarning\|dtype_m\|As an alternative" | tee "$OUT/log.txt"
  exit "${PIPESTATUS[0]}"
fi
# The CUDA tests first (~15 s): graphs equal to eager, fp16, bf16 (pytest is in the GPU image).
timeout 120 python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py 2>&1 | tail -40 | tee "$OUT/pytest.txt"
python3 benchmarks/gpu/gpu_bench.py --out "$OUT" --total-s "${TOTAL_S:-450}" 2>&1 \
  | grep -v "DeprecationWarning\|key_item.shape\|As an alternative" | tee "$OUT/log.txt"
