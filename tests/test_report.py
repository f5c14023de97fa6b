"""The HTML report: plots from a real (tiny) matrix run, rendered by headless Chromium."""

import pytest
from typer.testing import CliRunner

from browser import dump_dom
from rankbias.cli import app

# A tiny stand-in for the claims matrix: the scenario ids are the baselines',
# so the report scores and plots them; sizes are cut to seconds.
TINY = """
[tiers]
quick = 2

[[scenario]]
id = "galanti.wd"
paper = "galanti"
data = { kind = "mixture", n = 64, dim = 8, classes = 3, std = 1.0, seed = 0, test = 16 }
net = { arch = "deep_relu", widths = [8, 12, 12, 12, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 60, log_points = 4 }
grid = { "dynamics.wd" = [0.0, 0.01, 0.1] }

[[scenario]]
id = "kuzborskij.merge_overlap"
paper = "kuzborskij"
data = { kind = "subspace_pair", n = 40, dim = 8, k = 2, seed = 0 }
net = { arch = "shallow_relu", widths = [8, 16, 1] }
dynamics = { kind = "gd", loss = "logistic", lr = 0.5, wd = 0.01, steps = 60, log_points = 3 }
grid = { "data.cosine" = [0.0, 0.6] }
"""



@pytest.fixture(scope="module")
def report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    matrix = tmp / "tiny.toml"
    matrix.write_text(TINY)
    store = str(tmp / "s.sqlite")
    run = CliRunner().invoke(app, ["run", str(matrix), "--store", store, "--quiet", "--processes", "1",
                                   "--scorecard", str(tmp / "sc.json")])
    assert run.exit_code == 0, run.output
    out = tmp / "site"
    result = CliRunner().invoke(app, ["report", str(matrix), "--store", store, "--out", str(out), "--n-boot", "20"])
    assert result.exit_code == 0, result.output
    return out


def test_the_report_holds_the_scorecard_and_its_plots(report):
    page = (report / "index.html").read_text()
    for claim in ("galanti.wd", "kuzborskij.merge_overlap"):
        assert "<td rowspan='" in page and claim in page
    for png in ("galanti.wd.png", "spectra.png", "merging.png"):
        assert (report / png).stat().st_size > 5000 and f"src='{png}'" in page
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_headless_chromium_renders_the_report_with_every_image(report):
    dom = dump_dom((report / "index.html").as_uri(), report / "profile")
    assert 'data-rendered="yes"' in dom  # the page's script saw every <img> decoded
    assert dom.count("<figure>") >= 3 and 'id="scorecard"' in dom
    (report / "spectra.png").rename(report / "moved.png")  # a missing image is seen as such
    try:
        broken = dump_dom((report / "index.html").as_uri(), report / "profile")
    finally:
        (report / "moved.png").rename(report / "spectra.png")
    assert 'data-rendered="broken"' in broken


def test_sweep_plots_label_the_grid_values_and_keep_legends_off_the_data():
    import matplotlib.pyplot as plt
    import pandas as pd

    from rankbias.scoring import report
    from rankbias.scoring.hypotheses.base import RunSet, Sweep

    wds = [0.0, 1e-3, 5e-3, 1e-2, 2e-2]
    final = pd.DataFrame({"wd": wds * 2, "kind": ["gd"] * 5 + ["sgd"] * 5, "widths": ["8-12-12-3"] * 10,
                          "rank_tol@1": [12, 11, 8, 4, 3] * 2}, index=[f"r{i}" for i in range(10)])
    fig, ax = plt.subplots()
    report._sweep(ax, RunSet(final, pd.DataFrame()), Sweep("s", "wd", "rank_tol", "rank", split="kind"))
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.001", "0.005", "0.01", "0.02"]
    legend, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= frame.x1  # right of the axes: it covers no curve
    fig, ax = plt.subplots()
    report._sweep(ax, RunSet(final.assign(batch=[4, 8, 16, 32, 64] * 2), pd.DataFrame()),
                  Sweep("s", "batch", "rank_tol", "rank", logx=True))
    fig.canvas.draw()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4", "8", "16", "32", "64"]  # not only 10^1
    plt.close("all")


def test_the_papers_declare_their_plots_on_scenarios_of_the_claims_matrix():
    from rankbias.experiments.spec import builtin, load
    from rankbias.scoring import report
    from rankbias.scoring.hypotheses import scatters, spectra_plots, sweeps

    declared = sweeps()
    ids = {s.id for s in load(builtin(2)).scenario} | {s.id for s in load(builtin(3)).scenario}
    assert len(declared) == 12 and {s.scenario for s in declared} <= ids
    assert {s.scenario.split(".")[0] for s in declared} == {"galanti", "zangrando", "kuzborskij", "kobayashi",
                                                           "andriushchenko"}
    read = {sid for f in scatters() for _, sid, _, _ in f.series} | {sid for _, sid in spectra_plots()}
    assert read <= ids and {f.file for f in scatters()} == {"rank_vs_nc1.png", "merging.png"}
    source = open(report.__file__).read()
    assert not any(f'"{paper}.' in source for paper in ("galanti", "zangrando", "kuzborskij", "lejegelka"))


def test_each_claim_has_its_rank_over_steps_figure(report):
    page = (report / "index.html").read_text()
    for claim in ("galanti.wd", "kuzborskij.merge_overlap"):
        png = report / f"steps-{claim}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"src='steps-{claim}.png'" in page
    assert "galanti.wd: rank measures of layer 1 over training steps, one line per grid cell" in page


def test_trajectories_draw_one_line_and_band_per_cell_for_every_measure():
    import matplotlib.pyplot as plt
    import numpy as np
    import pandas as pd

    from rankbias.scoring import trajectories
    from rankbias.scoring.hypotheses.base import RunSet

    names = ["a0", "a1", "b0", "b1"]  # two cells, two seeds each
    final = pd.DataFrame({"widths": ["8-12-12-3"] * 4}, index=names)
    steps = [0.0, 10.0, 100.0]
    rows = [(n, s, 1, m, 12.0 - s / 10 - (n[0] == "b") - int(n[1])) for n in names for s in steps
            for m in trajectories.MEASURES]
    metrics = pd.DataFrame(rows, columns=["run", "step", "layer", "name", "value"])
    fig = plt.figure()
    layer = trajectories.draw(fig, RunSet(final, metrics), {n: f"wd={n[0]}" for n in names}, "c")
    assert layer == 1 and len(fig.axes) == 6
    for ax, measure in zip(fig.axes, trajectories.MEASURES):
        assert ax.get_title() == measure and [line.get_label() for line in ax.get_lines()] == ["wd=a", "wd=b"]
        np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [11.5, 10.5, 1.5])  # mean of the two seeds
        assert len(ax.collections) == 2  # a band per cell
    plt.close(fig)


def test_no_axis_is_labelled_with_an_offset(tmp_path):
    from rankbias.scoring import report

    axes = []

    def draw(ax):
        ax.plot([1, 2, 3], [0.99991, 0.99995, 0.99999])
        axes.append(ax)

    report._figure(tmp_path / "p.png", draw)
    assert axes[0].yaxis.get_major_formatter().get_offset() == ""  # not "1e-5+9.999e-1"


def test_no_saved_figure_is_cut_at_its_border(report):
    """A legend, title or tick label that runs past the saved image leaves ink on its last
    rows or columns (a clipped legend's frame ends at the edge); every figure keeps a white
    margin on all four sides instead."""
    import matplotlib.image as mpimg
    import numpy as np

    pngs = sorted(report.glob("*.png"))
    assert len(pngs) >= 5
    for png in pngs:
        rgb = mpimg.imread(png)[..., :3]
        for edge in (rgb[:3], rgb[-3:], rgb[:, :3], rgb[:, -3:]):
            assert np.all(edge > 0.95), f"{png.name} has ink at its border: a clipped artist"
