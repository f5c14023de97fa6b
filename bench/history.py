"""The tracked history without a network: asv's results drawn with matplotlib.

    python bench/history.py                 # .asv/results -> .asv/history/index.html
    python bench/history.py --results DIR --out DIR

``asv publish`` writes a site whose page loads jQuery, flot and Bootstrap from
CDNs, so offline it shows only an error.  This reads the same result files
(one JSON per commit and environment under ``<results>/<machine>/``) and draws
each benchmark's value over the commits, oldest first, one line per parameter
combination (small multiples past six), with a table of the last two commits'
values and their ratio, into a static page with PNGs.  Claims' ``track_``
series and kernels' times sit side by side, as on asv's site.
"""

from __future__ import annotations

import argparse
import html
import itertools
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

MAX_LINES = 6  # past this many series a benchmark gets one small panel per series


def load(results: Path) -> pd.DataFrame:
    """One row per (benchmark, series, commit): the value asv recorded, with the commit's date
    (asv's ``date``, the commit time) and short hash; NaN results (skipped) are dropped."""
    rows = []
    for path in sorted(results.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        run = json.loads(path.read_text())
        columns = run["result_columns"]
        for name, entry in run["results"].items():
            values, params = entry[columns.index("result")], entry[columns.index("params")]
            labels = [", ".join(p.strip("'") for p in combo) for combo in itertools.product(*params)] or [""]
            for label, value in zip(labels, values or []):
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    rows.append((name, label, run["commit_hash"][:8], run["date"], float(value)))
    return pd.DataFrame(rows, columns=["benchmark", "series", "commit", "date", "value"])


def units(results: Path) -> dict[str, str]:
    """Each benchmark's unit (seconds, bytes, or a track's own) from asv's benchmarks.json."""
    path = results / "benchmarks.json"
    described = json.loads(path.read_text()) if path.exists() else {}
    return {name: b.get("unit", "") for name, b in described.items() if isinstance(b, dict)}


def _figure(path: Path, name: str, data: pd.DataFrame, commits: list[str], unit: str = "") -> None:
    series = sorted(data.series.unique())
    panels = series if len(series) > MAX_LINES else [None]
    cols = min(len(panels), 4)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), dpi=90, squeeze=False)
    x = {c: i for i, c in enumerate(commits)}
    for ax, panel in zip(axes.flat, panels):
        for label in series if panel is None else [panel]:
            s = data[data.series == label].sort_values("date")
            ax.plot([x[c] for c in s.commit], s.value, marker="o", label=label or name.split(".")[-1])
        ax.set_xticks(range(len(commits)), commits, rotation=45, ha="right", fontsize=7)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_ylabel(unit, fontsize=7)
        ax.grid(alpha=0.3)
        if panel is not None:
            ax.set_title(panel, fontsize=8)
        elif len(series) > 1:
            ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def write(data: pd.DataFrame, out: Path, unit_of: dict[str, str] | None = None) -> Path:
    """``out/index.html`` and one PNG per benchmark (y labelled with ``unit_of[name]``); returns
    the page's path."""
    out.mkdir(parents=True, exist_ok=True)
    commits = list(data.sort_values("date").drop_duplicates("commit").commit)
    sections, table = [], []
    for name, rows in data.groupby("benchmark", sort=True):
        png = f"{name}.png"
        _figure(out / png, name, rows, commits, (unit_of or {}).get(name, ""))
        sections.append(f"<figure><img src='{html.escape(png)}' alt='{html.escape(name)}'>"
                        f"<figcaption>{html.escape(name)}</figcaption></figure>")
        last = rows.pivot_table(index="series", columns="commit", values="value", aggfunc="last")
        last = last.reindex(columns=[c for c in commits if c in last.columns])
        for label, values in last.iterrows():
            new = values.iloc[-1]
            old = values.iloc[-2] if len(values) > 1 else math.nan
            ratio = new / old if old and not math.isnan(old) else math.nan
            table.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(label)}</td><td>{old:.4g}</td>"
                         f"<td>{new:.4g}</td><td>{ratio:.3g}</td></tr>")
    page = out / "index.html"
    page.write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>rankbias: tracked history</title>"
        "<style>body{font-family:sans-serif;margin:2em} td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}"
        "table{border-collapse:collapse} figure{display:inline-block;margin:.5em} img{max-width:100%}</style>"
        f"</head><body><h1>rankbias: tracked history</h1><p>{len(commits)} commits, oldest first: "
        f"{html.escape(' '.join(commits))}</p><h2>Last two commits</h2><table><tr><th>benchmark</th><th>series</th>"
        f"<th>previous</th><th>last</th><th>last / previous</th></tr>{''.join(table)}</table>"
        f"<h2>Over commits</h2>{''.join(sections)}</body></html>")
    return page


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=Path(".asv/results"), help="asv's results_dir")
    parser.add_argument("--out", type=Path, default=Path(".asv/history"), help="where index.html and the PNGs go")
    args = parser.parse_args(argv)
    data = load(args.results)
    if data.empty:
        raise SystemExit(f"error: no asv results under {args.results}. Run `asv run` first, or pass --results DIR.")
    print(f"history of {data.benchmark.nunique()} benchmarks over {data.commit.nunique()} commits written to "
          f"{write(data, args.out, units(args.results))}")


if __name__ == "__main__":
    main()
