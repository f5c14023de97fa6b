"""rankbias.svdvals against torch.linalg.svdvals on the CPU, the two calls alternating.

    python -m bench.side_by_side [ROUNDS]        # default 9 rounds (5 at 1024 x 1024)

pytest-benchmark times one peer's rounds, then the next's; on a shared machine
the load can change between them.  Here each round calls rankbias, then torch,
on the same matrices (``bench.cases.SVDVALS_CASES``), so both see the same
load; it prints each one's median and the ratio of the medians (> 1: rankbias
is faster).  Run it twice or more: the ratio still moves by ~15% run to run.
"""

from __future__ import annotations

import statistics
import sys
import time


def main(rounds: int = 9) -> None:
    import torch

    import rankbias as rb
    from bench.cases import SVDVALS_CASES, nn_like

    for name, shape in SVDVALS_CASES.items():
        A = nn_like(*shape)
        At = torch.from_numpy(A)
        rb.svdvals(A)
        torch.linalg.svdvals(At)  # compile and warm up
        ours, theirs = [], []
        for _ in range(rounds if shape[-1] < 1024 else (rounds + 1) // 2):
            start = time.perf_counter()
            rb.svdvals(A)
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            torch.linalg.svdvals(At)
            theirs.append(time.perf_counter() - start)
        mine, peer = 1e3 * statistics.median(ours), 1e3 * statistics.median(theirs)
        print(f"svdvals {name}: rankbias {mine:.1f} ms, torch.linalg.svdvals {peer:.1f} ms, {peer / mine:.2f}x",
              flush=True)


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:2]))
