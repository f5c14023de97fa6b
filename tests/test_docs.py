"""The docs: the site builds strictly and renders in headless Chromium, its measured
tables are what ``bench.tables`` generates from the saved results, and every
``rankbias`` command that the README and the docs show parses (stale options
fail here), the cheap ones run for real.  ``run``, ``score``, ``compare`` and
``report`` run on small matrices in test_runner, test_score, test_compare and
test_report."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from bench import tables
from browser import dump_dom
from rankbias.cli import app

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, argv after ``rankbias``) of every ``.venv/bin/rankbias ...`` in a bash block."""
    out = []
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.S):
            for line in block.splitlines():
                for part in line.split("&&"):
                    part = part.split("  #")[0].strip()
                    if part.startswith(".venv/bin/rankbias"):
                        out.append((page.name, shlex.split(part)[1:]))
    return out


def parse(argv: list[str]) -> str:
    """Parse ``argv`` as the CLI would, without running the command; returns its name."""
    group = typer.main.get_command(app)
    ctx = group.make_context("rankbias", list(argv))
    name, command, rest = group.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
    command.make_context(name, rest, parent=ctx)
    return name


def test_every_command_the_readme_and_docs_show_parses():
    commands = shown_commands()
    names = {parse(argv) for _, argv in commands}
    assert {"run", "score", "compare", "ranks", "train", "list", "claims", "report"} <= names
    with pytest.raises(Exception, match="No such option"):
        parse(["run", "quick", "--procs", "2"])  # a stale option fails


def test_the_cheap_commands_shown_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    for argv in (["ranks", "--explain"], ["list", "quick"], ["claims", "--out", "claims.md"]):
        done = runner.invoke(app, argv)
        assert done.exit_code == 0, (argv, done.output)
    train = next(argv for page, argv in shown_commands() if page == "README.md" and argv[0] == "train")
    done = runner.invoke(app, [*train, "--store", "one.sqlite", "--device", "cpu"])
    assert done.exit_code == 0 and "stored as sgd[" in done.output, done.output
    made = subprocess.run([sys.executable, str(ROOT / "examples" / "train_mlp.py"), "--wd", "0.02", "--out", "mlp.pt"],
                          capture_output=True, text=True, timeout=600)
    assert made.returncode == 0, made.stderr
    done = runner.invoke(app, ["ranks", "mlp.pt"])
    assert done.exit_code == 0 and "rank_tol" in done.output, done.output


def test_the_generated_tables_are_what_the_saved_results_give():
    assert tables.main(["--check"]) == 0
    text = "a\n<!-- generated: t -->\nstale\n<!-- end: t -->\nb"
    assert tables.fill(text, {"t": lambda: "fresh"}) == "a\n<!-- generated: t -->\nfresh\n<!-- end: t -->\nb"
    with pytest.raises(KeyError, match="no block 'u'"):
        tables.fill(text, {"u": lambda: "x"})
    card = {"meta": {"claims_version": 2, "tier": "quick", "date": "2026-12-03", "rankbias": "0",
                     "git_commit": "abc", "runs": {"in_matrix": 1, "stored": 1, "done": 1}},
            "verdicts": [{"id": "x.y", "verdict": "fail", "n": 4, "seeds": [0, 1], "control": False,
                          "statistics": [{"name": "rho", "value": 0.5, "low": 0.1, "high": 0.9, "op": ">=",
                                          "threshold": 0.9, "status": "fail"}]}]}
    assert "| x.y | **fail** | rho = 0.5 [0.1, 0.9] | 4 / 2 |" in tables.verdict_summary(card)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if importlib_missing("mkdocs"):
        pytest.skip("needs the docs extra (pip install -e '.[docs]'), which the test extra includes")
    out = tmp_path_factory.mktemp("site")
    built = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                            "-d", str(out)], capture_output=True, text=True, timeout=600,
                           env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert built.returncode == 0, built.stderr
    return out


def importlib_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_the_site_builds_strictly_with_the_api_from_the_docstrings(site):
    page = (site / "api" / "linalg" / "index.html").read_text()
    assert 'id="rankbias.linalg.spectral.rsvd"' in page and "oversample" in page  # numpydoc Parameters
    assert (site / "claims" / "index.html").exists() and (site / "results" / "index.html").exists()


def test_headless_chromium_renders_a_docs_page(site, tmp_path):
    dom = dump_dom((site / "api" / "linalg" / "index.html").as_uri(), tmp_path / "profile")
    assert re.search(r'<html[^>]*class="[^"]*\bjs\b', dom)  # the theme's script ran
    assert 'id="rankbias.linalg.spectral.rsvd"' in dom and 'data-md-component="search"' in dom
