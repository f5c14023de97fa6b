"""Measured tables of the README and the docs, generated from saved results.

    python -m bench.tables            # rewrite every generated block in place
    python -m bench.tables --check    # exit 1 if a committed block differs (CI)

A generated block sits between ``<!-- generated: NAME -->`` and
``<!-- end: NAME -->`` in a Markdown file; ``BLOCKS`` says which saved result
fills it and how.  Nothing in a block is typed by hand: a new measurement is a
new saved file (a scorecard JSON from ``rankbias run``, a pytest-benchmark JSON
from ``pytest --benchmark-only --benchmark-json``) and one run of this script.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"


def _num(value) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def _criteria(verdict: dict) -> str:
    judged = [s for s in verdict["statistics"] if s["op"] is not None]
    return "; ".join(f"{s['name']} = {_num(s['value'])} [{_num(s['low'])}, {_num(s['high'])}] {s['op']} "
                     f"{_num(s['threshold'])} **{s['status']}**" for s in judged) or "-"


def _effect(verdict: dict) -> str:
    effects = [s for s in verdict["statistics"] if s["op"] is None]
    return f"{effects[0]['name']} = {_num(effects[0]['value'])}" if effects else "-"


def _cells(verdict: dict) -> str:
    cells = verdict.get("untrained_cells") or {}
    return ", ".join(f"{c}: {n}" for c, n in cells.items()) or str(verdict.get("untrained", 0))


def _label(verdict: dict) -> str:
    if verdict.get("kind") == "consistency":
        return f"{verdict['id']} (consistency check)"
    return f"{verdict['id']} (control)" if verdict.get("control") else verdict["id"]


def _caption(card: dict) -> str:
    meta = card["meta"]
    runs = meta["runs"]
    counts = ", ".join(f"{k} {v}" for k, v in runs.items() if k not in ("in_matrix", "stored"))
    return (f"Claims version {meta['claims_version']}, {meta['tier']} tier: {runs['stored']} stored runs ({counts}), "
            f"scored {meta['date'][:10]} by rankbias {meta['rankbias']} (commit {(meta['git_commit'] or '-')[:10]}). "
            f"Statistics per criterion with their 95% CI over seeds.")


def scorecard_table(card: dict) -> str:
    """Every verdict of a scorecard: criteria with CIs, effect, runs, untrained, horizon, stationary."""
    rows = ["| claim | verdict | criteria: value [95% CI] | effect | runs / seeds | untrained (cells) | horizon "
            "| stationary |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in card["verdicts"]:
        rows.append(f"| {_label(v)} | **{v['verdict']}** | {_criteria(v)} | {_effect(v)} | {v['n']} / "
                    f"{len(v['seeds'])} | {_cells(v)} | {_num(v['horizon'][0])}-{_num(v['horizon'][1])} | "
                    f"{v['stationary'][0]}/{v['stationary'][1]} |")
    return "\n".join([_caption(card), "", *rows])


def verdict_summary(card: dict) -> str:
    """One row per claim: verdict, first criterion, runs / seeds (the README's table)."""
    rows = ["| claim | verdict | first criterion: value [95% CI] | runs / seeds |", "| --- | --- | --- | --- |"]
    for v in card["verdicts"]:
        judged = [s for s in v["statistics"] if s["op"] is not None] or v["statistics"]
        first = (f"{judged[0]['name']} = {_num(judged[0]['value'])} [{_num(judged[0]['low'])}, "
                 f"{_num(judged[0]['high'])}]") if judged else "-"
        rows.append(f"| {_label(v)} | **{v['verdict']}** | {first} | {v['n']} / {len(v['seeds'])} |")
    return "\n".join([_caption(card), "", *rows])


def benchmark_table(saved: dict) -> str:
    """The cases of a pytest-benchmark JSON: median, the ratio to the group's rankbias case (its
    first case where it has none), accuracy."""
    by_group: dict[str, list] = {}
    for b in saved["benchmarks"]:
        by_group.setdefault(b["group"] or "", []).append(b)
    rows = ["| group | case | median | ratio | accuracy |", "| --- | --- | --- | --- | --- |"]
    for group, cases in by_group.items():
        ours = [b for b in cases if "rankbias" in (b.get("param") or b["name"])] or cases[:1]
        reference = ours[0]["stats"]["median"]
        params = [b.get("param") for b in cases]
        for b in cases:  # a case by its parameter, or by its test's name where cases share one
            label = b.get("param") if b.get("param") and params.count(b.get("param")) == 1 else b["name"]
            accuracy = ", ".join(f"{k} {v:.2g}" for k, v in b.get("extra_info", {}).items() if isinstance(v, float))
            median = b["stats"]["median"]
            rows.append(f"| {group} | {label} | {median * 1e3:.1f} ms | "
                        f"{median / reference:.2f} | {accuracy or '-'} |")
    info = saved.get("machine_info", {})
    cpu = info.get("cpu", {}).get("brand_raw", "?")
    head = (f"Saved {saved.get('datetime', '?')[:10]} on {cpu} ({info.get('cpu', {}).get('count', '?')} cores), "
            f"commit {(saved.get('commit_info', {}).get('id') or '-')[:10]}.")
    return "\n".join([head, "", *rows])


def version_changes(card: dict, before: dict) -> str:
    """Claims version 3 against version 2 scored on the same runs: one row per claim whose form
    or verdict changed (its verdicts in both, what changed and why; an unchanged form whose
    verdict moved moved by version 3's untrained rule) and one per new claim (verdict, effect,
    runs and seeds)."""
    from rankbias.scoring.hypotheses import claims, history

    old = {v["id"]: v for v in before["verdicts"]}
    new = {v["id"]: v for v in card["verdicts"]}
    amended = ["| claim | version 2 | version 3 | what changed, and why |", "| --- | --- | --- | --- |"]
    added = ["| new claim | verdict | effect | runs / seeds |", "| --- | --- | --- | --- |"]
    for h in claims(card["meta"]["claims_version"]):
        forms = history(h.id)
        ids = sorted(vid for vid in new if vid == h.id or vid.startswith(h.id + ".") or vid.startswith(h.id + "["))
        if forms[0].version == 3:
            added += [f"| {_label(new[vid])} | **{new[vid]['verdict']}** | {_effect(new[vid])} | {new[vid]['n']} / "
                      f"{len(new[vid]['seeds'])} (seeds {', '.join(map(str, new[vid]['seeds']))}) |" for vid in ids]
            continue
        for i, vid in enumerate(ids):
            was = old[vid]["verdict"] if vid in old else None
            if h.version < 3 and was == new[vid]["verdict"]:
                continue
            why = (h.amendment if i == 0 else f"as for {h.id}") if h.version == 3 else (
                f"version 3's untrained rule: {new[vid]['untrained']} of its runs excluded")
            amended.append(f"| {_label(new[vid])} | {f'**{was}**' if was else '-'} | **{new[vid]['verdict']}** "
                           f"| {why} |")
    return "\n".join([_caption(card), "", *amended, "", *added])


def schema_tables() -> str:
    """The columns of ``rankbias export``'s three tables, from the code that writes them."""
    from rankbias.experiments.export import METRICS_COLUMNS, RUNS_COLUMNS
    from rankbias.experiments.tables import FINAL_COLUMNS

    out = []
    for title, columns in (("runs", RUNS_COLUMNS), ("final", FINAL_COLUMNS), ("metrics", METRICS_COLUMNS)):
        out += [f"**{title}**", "", "| column | holds |", "| --- | --- |"]
        out += [f"| `{name}` | {what} |" for name, what in columns] + [""]
    return "\n".join(out).rstrip()


def _bench(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


def _load(name: str) -> dict:
    return json.loads((DOCS / name).read_text())


# file -> {block name: a function of nothing that returns the block's Markdown}
BLOCKS = {
    ROOT / "README.md": {"scorecard-v2": lambda: verdict_summary(_load("scorecard-standard-v2.json"))},
    DOCS / "results.md": {"scorecard-v3": lambda: scorecard_table(_load("scorecard-standard-v3.json")),
                          "v3-changes": lambda: version_changes(_load("scorecard-standard-v3.json"),
                                                                _load("scorecard-standard-v2-retrained.json")),
                          "scorecard-v2": lambda: scorecard_table(_load("scorecard-standard-v2.json")),
                          "scorecard-v1": lambda: scorecard_table(_load("scorecard-standard-v1.json"))},
    DOCS / "benchmarks.md": {"bench-spectral": lambda: benchmark_table(_bench("bench-cpu.json"))},
    DOCS / "engine.md": {"bench-engine": lambda: benchmark_table(_bench("bench-engine.json"))},
    DOCS / "export.md": {"export-schema": schema_tables},
}


def fill(text: str, blocks: dict) -> str:
    """``text`` with each generated block replaced by its fresh content; raises KeyError for a
    block the text lacks, so a deleted marker is noticed."""
    for name, make in blocks.items():
        pattern = re.compile(rf"(<!-- generated: {re.escape(name)} -->\n)(?:.*?\n)?(<!-- end: {re.escape(name)} -->)",
                             re.S)
        if not pattern.search(text):
            raise KeyError(f"no block '{name}' (<!-- generated: {name} --> ... <!-- end: {name} -->)")
        text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed block differs")
    args = parser.parse_args(argv)
    stale = []
    for path, blocks in BLOCKS.items():
        text = path.read_text()
        new = fill(text, blocks)
        if new != text:
            stale.append(str(path.relative_to(ROOT)))
            if not args.check:
                path.write_text(new)
    if args.check and stale:
        print(f"generated tables out of date in {', '.join(stale)}: run python -m bench.tables", file=sys.stderr)
        return 1
    print(("up to date" if args.check else "written") + f": {', '.join(str(p.relative_to(ROOT)) for p in BLOCKS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
