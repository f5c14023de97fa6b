"""Benchmarks (tests using the ``benchmark`` fixture) run only under
``pytest --benchmark-only``; the plain test run skips them."""

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # tests/reference.py
sys.path.insert(0, str(HERE.parent))  # bench/cases.py, shared with asv


def pytest_collection_modifyitems(config, items):
    if config.getoption("benchmark_only", default=False):
        return
    skip = pytest.mark.skip(reason="benchmark: run with pytest --benchmark-only")
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)
