"""The claims documentation is generated from the matrix and the hypotheses, and the
committed docs/claims.md is exactly what the code generates."""

from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankbias.scoring.claims_doc import document
from rankbias.cli import app
from rankbias.scoring.hypotheses import claims, history

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("version", [1, 2, 3])
def test_every_claim_is_documented_with_its_criteria_and_history(version):
    text = document(version)
    for h in claims(version):
        assert f"### {h.id}" in text
        for c in getattr(h, "criteria", ()):
            assert f"- {c.text()}" in text
    assert ("version 2:" in text) == (version >= 2) and ("version 3:" in text) == (version == 3)
    assert ("### kuzborskij.alignment (consistency check" in text) == (version == 3)


def test_an_amended_claim_shows_both_versions_and_the_reason():
    forms = history("lejegelka.rank1")
    assert [f.version for f in forms] == [1, 2] and forms[1].amendment
    section = document(2).split("### lejegelka.rank1")[1].split("### ")[0]
    for form in forms:
        assert all(c.text() in section for c in form.criteria)
    assert forms[1].amendment in section and "claims-v2.toml" not in section


def test_the_committed_claims_page_is_what_the_code_generates():
    card = DOCS / "scorecard-standard-v2.json"
    assert (DOCS / "claims.md").read_text() == document(2, card)
    assert "**Verdict**:" in (DOCS / "claims.md").read_text()
    card = DOCS / "scorecard-standard-v3.json"
    assert (DOCS / "claims-v3.md").read_text() == document(3, card if card.exists() else None)


def test_rankbias_claims_prints_or_writes_the_page(tmp_path):
    shown = CliRunner().invoke(app, ["claims", "--claims-version", "1"])
    assert shown.exit_code == 0 and "kuzborskij.alignment" in shown.output and "version 2" not in shown.output
    out = tmp_path / "claims.md"
    written = CliRunner().invoke(app, ["claims", "--out", str(out)])
    assert written.exit_code == 0 and out.read_text() == document(2)
