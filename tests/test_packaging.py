"""The distribution carries the whole package: every package under src/rankbias and
kernels/ is listed in pyproject.toml, with the data files the code reads."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_every_package_on_disk_is_in_the_distribution():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    src = ROOT / "src"
    on_disk = {".".join(p.parent.relative_to(src).parts) for p in src.rglob("__init__.py")}
    on_disk |= {"rankbias.kernels"} if (ROOT / "kernels" / "__init__.py").exists() else set()
    assert on_disk == set(config["packages"])
    assert config["package-dir"]["rankbias.kernels"] == "kernels"


def test_the_data_files_the_code_reads_are_package_data():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = config["package-data"]["rankbias"]
    matrices = sorted(p.name for p in (ROOT / "src" / "rankbias" / "matrices").iterdir())
    assert matrices and all(any(Path("matrices", m).match(pat) for pat in patterns) for m in matrices)
