"""The claims, documented from the one place they are defined.

``document(version, scorecard)`` renders, as Markdown, every claim a claims
version scores: its paper, what it predicts, its setup (the scenarios of the
built-in matrix, ``matrices/claims-v<version>.toml``, with their variants), its
criteria (``Trend.criteria``), its history (each version that changed it, with
that version's criteria and the reason) and, given a scorecard JSON written by
``rankbias run`` / ``score``, its verdict there.  ``rankbias claims`` prints it;
docs/claims.md is its output, and a test keeps the two equal.
"""

from __future__ import annotations

import json
from pathlib import Path

from rankbias.scoring import hypotheses, rules, score
from rankbias.scoring.hypotheses.base import GATE
from rankbias.experiments.spec import Scenario, builtin, load

PAPERS = {
    "galanti": "Galanti, Siegel, Gupte & Poggio, \"SGD and Weight Decay Secretly Minimize the Rank of Your Neural "
               "Network\", arXiv 2206.05794",
    "kuzborskij": "Kuzborskij & Abbasi Yadkori, \"Low-rank bias, weight decay, and model merging in neural "
                  "networks\", arXiv 2502.17340",
    "zangrando": "Zangrando, Deidda, Venturini & Tudisco, \"Neural Rank Collapse: Weight Decay and Small "
                 "Within-Class Variability Yield Low-Rank Bias\", arXiv 2402.03991",
    "lejegelka": "Le & Jegelka, \"Training invariances and the low-rank phenomenon: beyond linear networks\", "
                 "arXiv 2201.11968",
    "kobayashi": "Kobayashi, Akram & von Oswald, \"Weight decay induces low-rank attention layers\", arXiv "
                 "2410.23819",
    "andriushchenko": "Andriushchenko, Bahri, Mobahi & Flammarion, \"Sharpness-Aware Minimization Leads to "
                      "Low-Rank Features\", arXiv 2305.16292",
    "xie": "Xie & Li, \"Implicit Bias of AdamW: l-infinity Norm Constrained Optimization\", arXiv 2404.04454",
    "huh": "Huh, Mobahi, Zhang, Cheung, Agrawal & Isola, \"The Low-Rank Simplicity Bias in Deep Networks\", "
           "TMLR 2023, arXiv 2103.10427",
    "null": "Null hypotheses: rival explanations the papers' claims should beat",
    "new": "New hypotheses, not baselines: proposed beside the papers and scored the same way",
}


def _rules(version: int) -> str:
    lines = [
        f"A criterion is evaluated on the runs, then on {score.N_BOOT} bootstrap resamples of the seeds (a cluster "
        "bootstrap: all runs of a drawn seed); it **passes** when its value and both ends of its 95% CI meet it, "
        "**fails** when all three miss it, and is **inconclusive** otherwise. A claim passes when every criterion "
        "passes and fails when any fails. Effect sizes are reported with their CIs and never judged.",
    ]
    if version >= 3:
        lines.append(
            f"From version 3, a run is **untrained** when it diverged or its final training loss is above "
            f"{rules.HALF_CONSTANT} of the best constant predictor's (ln K for balanced K-class cross-entropy, ln 2 "
            "for the logistic loss, the targets' variance for MSE). **Consistency checks** test identities between "
            "the metrics; they are shown apart from the claims and never counted as evidence for a paper.")
    if version >= 2:
        lines.append(
            (f"From version 2, a run is **untrained** when it diverged, ended within {rules.CHANCE_MARGIN} of chance "
             f"train accuracy (1/K, or 1/2 for logistic loss), or (MSE) ended with a train loss >= "
             f"{rules.NO_PROGRESS} of its initial one. " if version == 2 else "As from version 2: ") +
            "Untrained runs are excluded from every statistic and counted "
            "per grid cell; a cell left with no trained run is dropped, and a criterion that needs it is "
            "inconclusive, naming it. A claim whose runs never meet its theorem's hypotheses is **not applicable**, "
            "shown with the best value of the hypothesis' test. A run is on the **stationarity gate** when "
            f"||grad L + wd theta|| / ||grad L|| <= {GATE} at its last step.")
    else:
        lines.append(f"In version 1, runs that ended within {rules.CHANCE_MARGIN} of chance train accuracy are "
                     "counted in a note and scored as they are.")
    return "\n\n".join(lines)


def _value(v) -> str:
    if isinstance(v, list):
        return "-".join(map(str, v)) if all(isinstance(x, int) for x in v) else "[" + ", ".join(_value(x) for x in v) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)


def _table(values: dict) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in values.items())


def _setup(s: Scenario, tiers: dict) -> list[str]:
    seeds = (f"seeds {s.seeds}" if isinstance(s.seeds, list) else f"{s.seeds} seeds" if s.seeds else
             "seeds per tier: " + ", ".join(f"{t} {tiers.get(t, 1)}" for t in s.tiers))
    lines = [f"- scenario `{s.id}` (tiers {', '.join(s.tiers)}; {seeds})",
             f"  - data: {_table(s.data)}", f"  - net: {_table(s.net)}", f"  - dynamics: {_table(s.dynamics)}"]
    if s.grid:
        lines.append("  - grid: " + "; ".join(f"{k} in {{{', '.join(_value(x) for x in v)}}}" for k, v in s.grid.items()))
    return lines


def _verdict(v: dict) -> str:
    stats = []
    for st in v["statistics"]:
        judged = f" {st['op']} {st['threshold']:g}: {st['status']}" if st["op"] else ""
        stats.append(f"{st['name']} = {st['value']:.3g} [{st['low']:.3g}, {st['high']:.3g}]{judged}")
    head = f"**{v['verdict']}** on {v['n']} runs, seeds {v['seeds']}"
    note = f" Note: {v['note']}" if v["note"] else ""
    return f"- `{v['id']}`: {head}; " + "; ".join(stats) + "." + note


def _claim(h, version: int, scenarios: dict, tiers: dict, verdicts: dict) -> list[str]:
    role = (" (control)" if getattr(h, "control", False) else
            " (consistency check: an identity between metrics, never evidence for the paper)"
            if h.kind == "consistency" else "")
    out = [f"### {h.id}{role}", "", f"**Predicts**: {h.predicts}.", ""]
    own = [sid for sid in scenarios if sid == h.id or sid.startswith(h.id + ".")]
    if own:
        out += ["**Setup**:", ""] + [line for sid in own for line in _setup(scenarios[sid], tiers)] + [""]
    others = [sid for sid in h.scenarios if sid not in own]
    if others:
        out += [f"Reads the runs of: {', '.join(f'`{sid}`' for sid in others)}.", ""]
    if getattr(h, "criteria", ()):
        out += ["**Criteria**:", ""] + [f"- {c.text()}" for c in h.criteria] + [""]
    elif h.kind == "predictor":
        out += ["**Scored** (not judged) by Spearman rho between predicted and measured rank and the mean "
                "|log measured - log predicted|.", ""]
    if getattr(h, "applies", None) is not None:
        out += [f"**Applies** only where its runs meet the theorem's hypothesis (else: not applicable): "
                f"{' '.join(h.applies.__doc__.split())}", ""]
    history = [form for form in hypotheses.history(h.id) if form.version <= version]
    out += ["**History**:", ""]
    for form in history:
        crit = "; ".join(c.text() for c in getattr(form, "criteria", ())) or "scored, not judged"
        why = f" {form.amendment}" if form.amendment else ""
        out.append(f"- version {form.version}: {crit}.{why}")
    out.append("")
    mine = [v for vid, v in verdicts.items() if vid == h.id or vid.startswith(h.id + ".") or vid.startswith(h.id + "[")]
    if verdicts:
        out += ["**Verdict**:", ""] + ([_verdict(v) for v in mine] or ["- not in this scorecard"]) + [""]
    return out


def document(version: int = hypotheses.CURRENT, scorecard: str | Path | None = None) -> str:
    """The Markdown document of claims version ``version``; verdicts from ``scorecard`` if given."""
    spec = load(builtin(version))
    scenarios = {s.id: s for s in spec.scenario}
    verdicts, source = {}, ""
    if scorecard is not None:
        card = json.loads(Path(scorecard).read_text())
        meta = card["meta"]
        if meta["claims_version"] != version:
            raise ValueError(f"scorecard {scorecard} scored claims version {meta['claims_version']}, not {version}. "
                             f"Pass --claims-version {meta['claims_version']} or a scorecard of version {version}.")
        verdicts = {v["id"]: v for v in card["verdicts"]}
        source = (f" Verdicts: the {meta['tier']} tier, scored {meta['date'][:10]} by rankbias {meta['rankbias']} "
                  f"(commit {(meta['git_commit'] or 'unknown')[:10]}), {meta['runs']['stored']} stored runs.")
    lines = [f"# The claims of rankbias, version {version}", "",
             f"Generated by `rankbias claims --claims-version {version}` from the built-in matrix "
             f"(`src/rankbias/experiments/matrices/claims-v{version}.toml`) and the hypotheses (`src/rankbias/scoring/hypotheses/`), "
             f"the code that scores them; do not edit by hand.{source}", "", "## How a claim is judged", "",
             _rules(version), ""]
    by_paper: dict[str, list] = {}
    for h in hypotheses.claims(version):
        by_paper.setdefault(h.paper, []).append(h)
    for paper, members in by_paper.items():
        lines += [f"## {paper}: {PAPERS.get(paper, paper)}", ""]
        for h in members:
            lines += _claim(h, version, scenarios, spec.tiers, verdicts)
    return "\n".join(lines).rstrip() + "\n"
