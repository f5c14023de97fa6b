"""The distribution carries the whole package: setuptools finds every package
under src/, and the data files the code reads are package data."""

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).parent.parent


def test_every_package_on_disk_is_found_for_the_distribution():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    src = ROOT / "src"
    on_disk = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    assert config["packages"]["find"]["where"] == ["src"]
    assert on_disk == set(find_packages(str(src)))
    assert {"rankbias.kernels", "rankbias.linalg.cuda", "rankbias.scoring.hypotheses"} <= on_disk


def test_the_data_files_the_code_reads_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["rankbias.experiments"]
    matrices = sorted(p.name for p in (ROOT / "src" / "rankbias" / "experiments" / "matrices").iterdir())
    assert matrices and all(any(Path("matrices", m).match(pat) for pat in patterns) for m in matrices)
