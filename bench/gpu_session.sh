#!/usr/bin/env bash
# What a lent GPU machine runs in one call, from a fresh checkout:
#
#   bash bench/gpu_session.sh [tests] [kernels] [profile] [check]    (default: all four)
#
#   tests    the real-device tests (CPU == GPU) and the CUDA compatibility test
#   kernels  the CUDA kernels against torch on the device (pytest-benchmark)
#   profile  where one call's time goes: device kernels, host waits, Python
#            overhead, and eager against replayed from a CUDA graph
#            (python -m bench.profile_cuda); rsvd's error over 512
#            sketches against torch's (python -m bench.rsvd_draws)
#   check    the quick tier on the CPU cores vs the GPU, and a 1024-member
#            ensemble on both (python -m bench.device_check)
#
# A stock GPU image (torch built for its CUDA, numba-cuda, no pydantic or
# mnist1d) gets the missing packages as wheels carried in .whl, made here with
# the command in the README's "On a GPU"; the package itself is built from
# this checkout without the network.  Logs and the device check's summary go
# to $OUT (default device-out).
set -o pipefail
OUT=${OUT:-device-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
SITE=/tmp/rankbias-site
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl || exit 1
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile --target "$SITE" . || exit 1
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
python3 -c "import torch, numba, numpy; from numba import cuda; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'numba', numba.__version__, 'numpy', numpy.__version__)" | tee -a "$OUT/gpu.txt"

phases=${*:-tests kernels profile check}
status=0
for phase in $phases; do
    case $phase in
        tests)
            python3 -m pytest -q -p no:cacheprovider tests/test_cuda_device.py tests/test_cuda_compat.py \
                2>&1 | tee "$OUT/tests.log" || status=1 ;;
        kernels)
            python3 -m pytest -q -p no:cacheprovider --benchmark-only tests/test_bench_cuda.py \
                2>&1 | tee "$OUT/kernels.log" || status=1 ;;
        profile)
            { python3 -m bench.profile_cuda && python3 -m bench.rsvd_draws; } 2>&1 | tee "$OUT/profile.log" || status=1 ;;
        check)
            python3 -m bench.device_check --out "$OUT/check" 2>&1 | tee "$OUT/check.log" || status=1 ;;
        *)
            echo "unknown phase '$phase': use tests, kernels, profile or check" >&2
            exit 2 ;;
    esac
done
exit $status
