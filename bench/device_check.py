"""The device check a lent GPU runs in one call: a matrix tier trained on the CPU
(one worker per core) and on the GPU, their verdicts and rank_tol compared side
by side, their wall times, and a 1024-member ensemble timed on both.

    python -m bench.device_check                      # quick tier, cuda vs all CPU cores
    python -m bench.device_check --target standard    # another tier (or a matrix TOML)

Both sides go through the command line a user runs (``rankbias run TARGET
--device D --processes N``) into stores of their own under ``--out``; the
summary (a table here, ``summary.json`` there) gives:

- verdicts: how many claims read the same on both devices, and which do not;
- rank_tol: the share of (run, layer) pairs of runs done on both devices whose
  final rank_tol is equal (target >= 95%: the two devices round differently, and
  a long SGD run amplifies that, so a run may end one singular value apart);
- wall times of both trainings, and of ``--members`` SGD runs x ``--steps`` steps
  of the engine's MLP with every metric at 20 log points (one round each side).

Without a GPU it exits 2; ``--gpu cpu`` checks the check itself on the CPU (the
tests do that on a tiny matrix, where both sides must agree exactly).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch


def train(target: str, tier: str, device: str, processes: int, out: Path, side: str) -> float:
    """Train ``target`` on ``device`` into out/<side>.sqlite through the CLI; its wall time (s)."""
    command = [sys.executable, "-m", "rankbias.cli", "run", target, "--tier", tier, "--device", device,
               "--processes", str(processes), "--store", str(out / f"{side}.sqlite"),
               "--scorecard", str(out / f"{side}.json"), "--quiet"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def verdicts(scorecard: Path) -> dict[str, str]:
    return {v["id"]: v["verdict"] for v in json.loads(scorecard.read_text())["verdicts"]}


def rank_agreement(a: Path, b: Path) -> tuple[int, int]:
    """(pairs equal, pairs compared): final rank_tol of each (run, layer) of runs done in both stores."""
    from rankbias.experiments.store import Store

    finals = []
    for path in (a, b):
        store = Store(path)
        done = set(store.runs().query("status == 'done'").name)
        m = store.metrics(name="rank_tol")
        m = m[m.run.isin(done)]
        last = m[m.step == m.groupby("run").step.transform("max")]
        finals.append(last.set_index(["run", "layer"]).value)
    both = finals[0].to_frame("a").join(finals[1].to_frame("b"), how="inner")
    return int((both.a == both.b).sum()), len(both)


def ensemble_seconds(device: str, members: int, steps: int) -> float:
    """Wall time of ``members`` SGD runs x ``steps`` steps of the engine's MLP, every metric at 20 log points."""
    from bench.cases import engine_data, large_members, tracked_ensemble

    data = engine_data().to(device)
    start = time.perf_counter()
    tracked_ensemble(data, large_members(members, steps))
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="quick", help="a tier of the claims matrix, or a matrix TOML file")
    parser.add_argument("--tier", default="quick", help="the tier of a matrix file")
    parser.add_argument("--gpu", default="cuda", help="the accelerated side's device (cpu: check the check)")
    parser.add_argument("--cpu-processes", type=int, default=os.cpu_count(), help="CPU workers (default: one per core)")
    parser.add_argument("--members", type=int, default=1024, help="ensemble benchmark members (0: skip it)")
    parser.add_argument("--steps", type=int, default=2000, help="ensemble benchmark SGD steps")
    parser.add_argument("--out", type=Path, default=Path("device-check"), help="directory for the stores and summary")
    args = parser.parse_args(argv)
    if args.gpu != "cpu" and not torch.cuda.is_available():
        print(f"device check: no GPU here (torch {torch.__version__}); pass --gpu cpu to check the check itself.")
        raise SystemExit(2)
    args.out.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count() if args.gpu == "cuda" else 1
    summary: dict = {"target": args.target, "tier": args.tier, "gpu": args.gpu, "cpu_processes": args.cpu_processes,
                     "device_name": torch.cuda.get_device_name() if args.gpu != "cpu" else "cpu",
                     "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}
    summary["cpu_s"] = train(args.target, args.tier, "cpu", args.cpu_processes, args.out, "cpu")
    summary["gpu_s"] = train(args.target, args.tier, args.gpu, gpus, args.out, "gpu")
    cpu, gpu = verdicts(args.out / "cpu.json"), verdicts(args.out / "gpu.json")
    summary["verdicts_same"] = sum(cpu[k] == gpu.get(k) for k in cpu)
    summary["verdicts"] = len(cpu)
    summary["verdicts_differ"] = {k: [cpu[k], gpu.get(k)] for k in cpu if cpu[k] != gpu.get(k)}
    summary["rank_tol_equal"], summary["rank_tol_pairs"] = rank_agreement(args.out / "cpu.sqlite",
                                                                          args.out / "gpu.sqlite")
    if args.members:
        with_threads = torch.get_num_threads()
        summary["ensemble"] = f"{args.members} runs x {args.steps} SGD steps, metrics at 20 log points"
        summary["ensemble_cpu_s"] = ensemble_seconds("cpu", args.members, args.steps)
        summary["ensemble_gpu_s"] = ensemble_seconds(args.gpu, args.members, args.steps)
        summary["ensemble_cpu_threads"] = with_threads
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    _print(summary)
    return summary


def _print(s: dict) -> None:
    share = s["rank_tol_equal"] / max(s["rank_tol_pairs"], 1)
    lines = [
        f"device check: {s['target']} ({s['tier']}) on {s['gpu']} ({s['device_name']}) vs cpu x {s['cpu_processes']}",
        f"  training    cpu {s['cpu_s']:8.1f} s   {s['gpu']} {s['gpu_s']:8.1f} s   ratio {s['cpu_s'] / s['gpu_s']:.2f}x",
        f"  verdicts    {s['verdicts_same']} of {s['verdicts']} the same" +
        (f"; differ: {s['verdicts_differ']}" if s["verdicts_differ"] else ""),
        f"  rank_tol    {s['rank_tol_equal']} of {s['rank_tol_pairs']} (run, layer) pairs equal ({share:.1%})",
    ]
    if "ensemble_cpu_s" in s:
        lines.append(f"  ensemble    {s['ensemble']}: cpu ({s['ensemble_cpu_threads']} threads) "
                     f"{s['ensemble_cpu_s']:.1f} s, {s['gpu']} {s['ensemble_gpu_s']:.1f} s, "
                     f"ratio {s['ensemble_cpu_s'] / s['ensemble_gpu_s']:.1f}x")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
