"""A static HTML report of a scored matrix: the scorecard and plots (matplotlib).

``write(out_dir, verdicts, runs)`` writes ``index.html`` and one PNG per plot.
The papers' modules declare the plots they want (``hypotheses.sweeps``,
``spectra_plots``, ``scatters``); this module draws them:

- a ``Sweep``: a claim's measured quantity against its grid value, the mean over
  seeds with a min-max band (rank vs wd / B / lr, gaps vs wd / spread, ...);
- a ``SPECTRA`` entry: singular-value spectra sigma_i / sigma_1 of a hidden
  layer over training, at the smallest and largest wd of a sweep;
- a ``Scatter``: one dot per run (e.g. Zangrando et al.'s tail ratio against
  the NC1 of a layer's input, Kuzborskij & Abbasi Yadkori's merged against
  individual accuracy);
- for every scored claim, its rank measures over training steps, seeds as
  bands (``trajectories``).

The page marks ``<body data-rendered="yes">`` once every image has loaded, which
the test reads from headless Chromium.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from rankbias.scoring import trajectories  # noqa: E402
from rankbias.scoring.hypotheses import scatters, spectra_plots, sweeps  # noqa: E402
from rankbias.scoring.hypotheses.base import RunSet, Scatter, Sweep, hidden_square  # noqa: E402

def _sweep(ax, runs: RunSet, sweep: Sweep) -> None:
    f, x, logx, split = runs.final, sweep.x, sweep.logx, sweep.split
    y = sweep.measured(runs)
    groups = [(None, f.index)] if split is None else list(f.groupby(split).groups.items())
    for label, idx in groups:
        g = pd.DataFrame({"x": f.loc[idx, x].astype(float), "y": y.loc[idx].astype(float)}).dropna()
        if g.empty:
            continue
        stats = g.groupby("x").y.agg(["mean", "min", "max"]).sort_index()
        xs = stats.index.to_numpy()
        xs = np.where(xs == 0, np.nan, xs) if logx else xs
        line = ax.plot(xs, stats["mean"], marker="o", label=f"{split}={label}" if split else "mean over seeds")[0]
        ax.fill_between(xs, stats["min"], stats["max"], alpha=0.25, color=line.get_color(), label=None)
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if sweep.logy else "linear")
    _grid_ticks(ax, sorted(set(f[x].astype(float)) - ({0.0} if logx else set())))
    ax.set_xlabel(x)
    ax.set_ylabel(sweep.label)
    ax.grid(alpha=0.3)
    _legend_outside(ax)


def _grid_ticks(ax, values: list[float]) -> None:
    """x ticks at the grid's own values (a log axis would label only powers of 10),
    slanted so close values (0 and 1e-3 on a wd axis) do not overprint."""
    ax.set_xticks(values, [f"{v:g}" for v in values], rotation=40, ha="right", fontsize=7)
    ax.minorticks_off()


def _legend_outside(ax) -> None:
    """The legend right of the axes, where it cannot cover a curve."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)


def _subset(data, scenario: str) -> RunSet | None:
    names = [n for n in data.names([scenario]) if n in data.final.index]
    final = data.final.loc[names]
    final = final[final.status == "done"]
    return data.runset(final) if len(final) else None


def _figure(path: Path, draw, size=(6.4, 3.6)) -> None:
    """One PNG: ``draw(ax)``; plain tick labels (no "1e-5+9.999e-1" offset), the legend kept."""
    with plt.rc_context({"axes.formatter.useoffset": False}):
        fig, ax = plt.subplots(figsize=size, dpi=100)
        draw(ax)
        fig.tight_layout()
        fig.savefig(path, bbox_inches="tight")  # the outside legend stays in the file
        plt.close(fig)


def _trajectories(out: Path, data, verdicts) -> list[tuple[str, str]]:
    """One figure per scored claim: its rank measures over training (``trajectories``)."""
    made = []
    for v in verdicts:
        names = [n for n in v.runs if n in data.final.index]
        if not names:
            continue
        runs = data.runset(data.final.loc[names])
        if len(trajectories.steps_logged(runs)) < 2:
            continue
        file = f"steps-{v.id}.png"
        with plt.rc_context({"axes.formatter.useoffset": False}):
            fig = plt.figure(figsize=(9.0, 4.8), dpi=100)
            layer = trajectories.draw(fig, runs, trajectories.cells_of(data, names), v.id)
            fig.savefig(out / file, bbox_inches="tight")
            plt.close(fig)
        made.append((file, f"{v.id}: rank measures of layer {layer} over training steps, one line per grid cell "
                           f"(mean over its {len(v.seeds)} seeds, band min-max)"))
    return made


def _spectra(ax, data, runs: RunSet) -> None:
    f = runs.final
    layer = hidden_square(f["widths"].iloc[0])[0]
    for wd, style in ((f["wd"].min(), "Blues"), (f["wd"].max(), "Reds")):
        name = f[(f["wd"] == wd) & (f["seed"] == f["seed"].min())].index[0]
        spec = data.spectra(name)
        spec = spec[spec.layer == layer]
        steps = spec.step.to_numpy()
        picks = sorted(set(np.linspace(0, len(steps) - 1, 5).astype(int)))
        cmap = plt.get_cmap(style)
        for j, i in enumerate(picks):
            s = spec.sigma.iloc[i]
            ax.semilogy(np.arange(1, len(s) + 1), s / s[0], color=cmap(0.35 + 0.6 * j / max(len(picks) - 1, 1)),
                        label=f"wd={wd:g}, step {steps[i]:g}")
    ax.set_xlabel("index i")
    ax.set_ylabel(f"sigma_i / sigma_1, layer {layer}")
    ax.set_ylim(1e-4, 1.5)
    ax.grid(alpha=0.3)
    _legend_outside(ax)


def _values(runs: RunSet, what) -> pd.Series:
    return what(runs) if callable(what) else runs.final[what]


def _scatter(ax, data, figure: Scatter) -> None:
    markers = "os^vD"
    for j, (label, scenario, x, y) in enumerate(figure.series):
        runs = _subset(data, scenario)
        if runs is not None:
            ax.scatter(_values(runs, x), _values(runs, y), marker=markers[j % len(markers)], label=label)
    if figure.diagonal is not None:
        ax.plot(figure.diagonal, figure.diagonal, color="grey", lw=0.8)
    ax.set_xscale("log" if figure.logx else "linear")
    ax.set_yscale("log" if figure.logy else "linear")
    ax.set_xlabel(figure.xlabel)
    ax.set_ylabel(figure.ylabel)
    ax.grid(alpha=0.3)
    _legend_outside(ax)


def plots(out: Path, data, verdicts=()) -> list[tuple[str, str]]:
    """Write the PNGs into ``out`` (the sweeps, spectra and scatters the papers ask for, then
    each of ``verdicts``' rank trajectories); returns (file name, caption) of each."""
    made = []
    for sweep in sweeps():
        runs = _subset(data, sweep.scenario)
        if runs is None:
            continue
        name = f"{sweep.scenario}.png"
        _figure(out / name, lambda ax: (_sweep(ax, runs, sweep), ax.set_title(sweep.scenario)))
        made.append((name, f"{sweep.scenario}: {sweep.label} against {sweep.x} (band: min-max over seeds)"))
    for file, scenario in spectra_plots():
        runs = _subset(data, scenario)
        if runs is not None and runs.final["wd"].nunique() > 1:
            _figure(out / file, lambda ax: _spectra(ax, data, runs))
            made.append((file, f"{scenario}: singular values over training at the smallest and largest wd"))
    for figure in scatters():
        if any(_subset(data, scenario) is not None for _, scenario, _, _ in figure.series):
            _figure(out / figure.file, lambda ax: _scatter(ax, data, figure))
            made.append((figure.file, figure.caption))
    return made + _trajectories(out, data, verdicts)


def _cell(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3g}"


def _table(verdicts) -> str:
    rows = []
    for v in verdicts:
        for i, s in enumerate(v.statistics or [None]):
            head = (f"<td rowspan='{max(len(v.statistics), 1)}'>{html.escape(v.id)}</td>"
                    f"<td rowspan='{max(len(v.statistics), 1)}' class='{v.verdict.replace(' ', '-')}'>{v.verdict}</td>") if i == 0 else ""
            tail = (f"<td rowspan='{max(len(v.statistics), 1)}'>{v.n} / {len(v.seeds)}</td>"
                    f"<td rowspan='{max(len(v.statistics), 1)}'>{_cell(v.horizon[0])} - {_cell(v.horizon[1])}</td>"
                    f"<td rowspan='{max(len(v.statistics), 1)}'>{v.stationary[0]}/{v.stationary[1]}</td>"
                    f"<td rowspan='{max(len(v.statistics), 1)}'>{html.escape(v.note)}</td>") if i == 0 else ""
            if s is None:
                body = "<td colspan='4'>-</td>"
            else:
                crit = f"{html.escape(s.op)} {_cell(s.threshold)}" if s.op else "effect"
                body = (f"<td>{html.escape(s.name)}</td><td>{_cell(s.value)} [{_cell(s.low)}, {_cell(s.high)}]</td>"
                        f"<td>{crit}</td><td class='{s.status.replace(' ', '-')}'>{s.status}</td>")
            rows.append(f"<tr>{head}{body}{tail}</tr>")
    header = ("<tr><th>claim</th><th>verdict</th><th>statistic</th><th>value [95% CI over seeds]</th>"
              "<th>criterion</th><th>status</th><th>runs / seeds</th><th>horizon lr*wd*T</th>"
              "<th>stationary (wd&gt;0)</th><th>note</th></tr>")
    return f"<table id='scorecard'>{header}{''.join(rows)}</table>"


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>rankbias report: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }} table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border: 1px solid #ccc; padding: 3px 6px; vertical-align: top; }}
.pass {{ background: #d4f4d4; }} .fail {{ background: #f8d0d0; }} .inconclusive {{ background: #fbf0c0; }}
.not-applicable {{ background: #dde6f6; }}
figure {{ display: inline-block; margin: 0.5em; width: 520px; }} figcaption {{ font-size: 12px; }}
</style></head>
<body data-rendered="no">
<h1>rankbias report: {title}</h1>
<p>{summary}</p>
<h2>Scorecard</h2>
{table}
<h2>Plots</h2>
{figures}
<script>
window.addEventListener("load", () => {{
  const imgs = Array.from(document.images);
  document.body.dataset.rendered = imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0) ? "yes" : "broken";
}});
</script>
</body></html>
"""


def write(out: str | Path, verdicts, data, title: str) -> Path:
    """Write ``index.html`` and the plots into ``out`` (created); returns the page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    made = plots(out, data, verdicts)
    counts = pd.Series([v.verdict for v in verdicts]).value_counts().to_dict()
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + f"; {len(data.final)} stored runs."
    figures = "\n".join(f"<figure><img src='{html.escape(n)}' alt='{html.escape(c)}'><figcaption>{html.escape(c)}"
                        f"</figcaption></figure>" for n, c in made)
    page = out / "index.html"
    page.write_text(PAGE.format(title=html.escape(title), summary=html.escape(summary), table=_table(verdicts),
                                figures=figures))
    return page
