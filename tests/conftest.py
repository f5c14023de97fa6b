"""Benchmarks (tests using the ``benchmark`` fixture) run only under
``pytest --benchmark-only``, where the other tests are deselected (not listed as
skipped); the plain test run skips the benchmarks.  After the timing tables, a
benchmark session prints one summary: each case's median beside rankbias's, as
a ratio, with the accuracy each benchmark recorded in ``extra_info``."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # tests/reference.py
sys.path.insert(0, str(HERE.parent))  # bench/cases.py, shared with asv


def _is_benchmark(item) -> bool:
    return "benchmark" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        dropped = [item for item in items if not _is_benchmark(item)]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = [item for item in items if _is_benchmark(item)]
        return
    skip = pytest.mark.skip(reason="benchmark: run with pytest --benchmark-only")
    for item in items:
        if _is_benchmark(item):
            item.add_marker(skip)


def summary_rows(benchmarks) -> list[tuple[str, str, float, float, str]]:
    """(group, name, median s, median / the group's rankbias median, accuracy) per benchmark, in
    the order run; a group without a rankbias entry is compared with its fastest."""
    groups: dict[str, list] = {}
    for bench in benchmarks:
        groups.setdefault(bench.group or "", []).append(bench)
    rows = []
    for group, members in groups.items():
        ours = [b for b in members if "rankbias" in (b.param or b.name)]
        reference = min(b.stats.median for b in (ours or members))
        for b in members:
            accuracy = ", ".join(f"{k} {v:.2g}" for k, v in b.extra_info.items() if isinstance(v, float))
            rows.append((group, b.param or b.name, b.stats.median, b.stats.median / reference, accuracy))
    return rows


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    write = terminalreporter.write_line
    write("")
    write("summary: median per case, time / rankbias's (> 1: rankbias is faster), accuracy vs float64 LAPACK")
    last = None
    for group, name, median, ratio, accuracy in summary_rows(session.benchmarks):
        if group != last:
            write(f"  {group}")
            last = group
        write(f"    {name[:40]:40s} {median * 1e3:10.2f} ms {ratio:7.2f}x  {accuracy}"[:120])


def simulate(script: str) -> dict:
    """Run ``script`` in a child under Numba's CUDA simulator (which must be switched on before
    numba.cuda is first imported, hence the child); its last stdout line is JSON."""
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])
