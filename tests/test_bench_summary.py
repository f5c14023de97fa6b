"""The benchmark session's summary: medians as ratios to rankbias's, with accuracy."""

from types import SimpleNamespace

import pytest
from conftest import summary_rows


def _bench(group, param, median, **extra):
    return SimpleNamespace(group=group, param=param, name=f"test[{param}]", stats=SimpleNamespace(median=median),
                           extra_info=extra)


def test_ratios_are_to_rankbias_in_its_group_and_to_the_fastest_without_it():
    rows = summary_rows([
        _bench("svdvals 8", "8-rankbias", 0.010, max_rel_err=1e-7),
        _bench("svdvals 8", "8-torch", 0.025, max_rel_err=2e-5),
        _bench("engine", "plain", 3.0),
        _bench("engine", "ensemble-fast", 0.5),
    ])
    assert [(r[1], r[3]) for r in rows] == [("8-rankbias", 1.0), ("8-torch", pytest.approx(2.5)),
                                            ("plain", pytest.approx(6.0)), ("ensemble-fast", 1.0)]
    assert rows[1][4] == "max_rel_err 2e-05" and rows[2][4] == ""


def test_benchmark_only_deselects_the_other_tests_instead_of_listing_them_as_skipped():
    import subprocess
    import sys
    from pathlib import Path

    import os

    root = Path(__file__).parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}  # a worker of `pytest -n` is not one
    done = subprocess.run([sys.executable, "-m", "pytest", "--benchmark-only", "-ra", "-q", "-p", "no:cacheprovider",
                           "tests/test_bench_summary.py"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert "deselected" in done.stdout and "Skipping non-benchmark" not in done.stdout, done.stdout
