"""Where the GPU path's time goes, per call: the fixed cost the first device run found.

    python -m bench.profile_cuda            # on a GPU machine (bench/gpu_session.sh: phase profile)

For rsvd of one 4096 x 4096 matrix and of 64 x 100 x 100, and ranks of the
engine's 192 x 100 x 100, it prints, per call (after warm-up): the median wall
time of synchronized calls; the device kernels launched and the device time
they took, from torch.profiler (CUPTI sees numba-cuda's launches as well as
torch's); the host-device synchronizations and copies to the host; and the
Python functions with the most cumulative time (cProfile), which is where
launch overhead shows.  A call whose wall time far exceeds its device time is
bound by the host.  Each case is timed twice: replayed, as a repeated call runs
(from the CUDA graph ``rankbias.linalg.cuda.graphs`` records), and eagerly; the
profiles are of the eager path, whose launches the graph saves.
"""

from __future__ import annotations

import cProfile
import pstats
import statistics
import time

CALLS = 20
HOST_WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaMemcpy", "cudaMemcpyAsync", "cuMemcpyDtoH",
              "cuStreamSynchronize", "cuCtxSynchronize", "cudaEventSynchronize")


def _cases():
    import torch

    import rankbias as rb
    from bench.cases import CUDA_SHAPES, nn_like

    def on_device(name):
        return torch.from_numpy(nn_like(*CUDA_SHAPES[name])).cuda()

    big, small, layers = on_device("1x4096x4096"), on_device("64x100x100"), on_device("192x100x100")
    return {
        "rsvd 1x4096x4096 k=32": lambda: rb.rsvd(big, 32, seed=0),
        "rsvd 64x100x100 k=32": lambda: rb.rsvd(small, 32, seed=0),
        "ranks 192x100x100": lambda: rb.ranks(layers),
    }


def _wall_ms(fn, sync) -> float:
    times = []
    for _ in range(CALLS):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _events(fn, sync) -> dict:
    """Per call: device kernels, their device time (ms), host waits and the API calls behind them."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(CALLS):
            fn()
        sync()
    kernels, device_us, waits = 0, 0.0, {}
    for e in prof.key_averages():
        if e.device_type.name == "CUDA":
            kernels += e.count
            device_us += e.self_device_time_total
        elif any(e.key.startswith(name) for name in HOST_WAITS):
            waits[e.key] = waits.get(e.key, 0) + e.count
    return {"kernels": kernels / CALLS, "device_ms": device_us / 1e3 / CALLS,
            "waits": {k: v / CALLS for k, v in sorted(waits.items())}}


def main() -> None:
    import torch

    from rankbias.linalg.cuda import graphs as cuda_graphs

    sync = torch.cuda.synchronize
    for name, fn in _cases().items():
        fn()
        fn()
        sync()  # compile and warm up; the second call records the CUDA graph
        replayed = _wall_ms(fn, sync)
        with cuda_graphs.disabled():  # where the eager path's time goes: what a graph saves
            wall = _wall_ms(fn, sync)
            ev = _events(fn, sync)
            print(f"\n== {name}: {replayed:.2f} ms per call replayed from a CUDA graph, {wall:.2f} ms eager "
                  f"(medians of {CALLS}); eager: device busy {ev['device_ms']:.2f} ms, {ev['kernels']:.0f} kernels")
            print("   host waits per call:", ", ".join(f"{k} {v:g}" for k, v in ev["waits"].items()) or "none")
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(CALLS):
                fn()
            sync()
            profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(14)


if __name__ == "__main__":
    main()
