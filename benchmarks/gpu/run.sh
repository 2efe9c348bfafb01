#!/usr/bin/env bash
# Run ON THE GPU MACHINE through the device tool (see README.md): installs the carried wheels and EGL
# libraries, then measures everything of benchmarks/gpu/gpu_bench.py into $OUT within ~8 minutes.
set -uo pipefail
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD MUJOCO_GL=egl PYTHONUNBUFFERED=1
vendor=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$vendor" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$vendor
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/nvidia_smi.csv"
python3 benchmarks/gpu/gpu_bench.py --out "$OUT" --total-s "${TOTAL_S:-450}" 2>&1 | tee "$OUT/log.txt"
