"""bench/history.py draws asv's results offline: every series over commits, oldest first."""

import json

import pytest

from bench.history import load, main, units

COLUMNS = ["result", "params", "version", "started_at", "duration"]


def _result(root, commit, date, results):
    (root / "vm").mkdir(parents=True, exist_ok=True)
    (root / "vm" / "machine.json").write_text("{}")
    run = {"commit_hash": commit * 5, "date": date, "result_columns": COLUMNS,
           "results": {name: [values, params, "v", 0, 1.0] for name, (values, params) in results.items()}}
    (root / "vm" / f"{commit}-env.json").write_text(json.dumps(run))


def test_history_reads_each_series_per_commit_and_writes_a_page(tmp_path):
    results = tmp_path / "results"
    claims = [["'galanti.wd'", "'zangrando.nc1'"]]
    _result(results, "bbbbbbbb", 2000, {"bench_claims.ClaimScores.track_statistic": ([-1.0, 0.9], claims),
                                        "bench_cuda.CudaRSVD.time_rsvd": ([float("nan")], [["'1x64x64'"]])})
    _result(results, "aaaaaaaa", 1000, {"bench_claims.ClaimScores.track_statistic": ([-0.8, None], claims),
                                        "bench_engine.EnsembleSuite.time_ensemble": ([2.0], [])})
    (results / "benchmarks.json").write_text(json.dumps({"bench_engine.EnsembleSuite.time_ensemble": {"unit": "seconds"},
                                                         "version": 2}))
    assert units(results) == {"bench_engine.EnsembleSuite.time_ensemble": "seconds"}
    data = load(results)
    stat = data[data.benchmark == "bench_claims.ClaimScores.track_statistic"].sort_values(["series", "date"])
    assert list(zip(stat.series, stat.commit, stat.value)) == [("galanti.wd", "aaaaaaaa", -0.8),
                                                              ("galanti.wd", "bbbbbbbb", -1.0),
                                                              ("zangrando.nc1", "bbbbbbbb", 0.9)]
    assert "bench_cuda.CudaRSVD.time_rsvd" not in set(data.benchmark)  # a skipped (NaN) result is no point
    out = tmp_path / "site"
    main(["--results", str(results), "--out", str(out)])
    page = (out / "index.html").read_text()
    assert "2 commits, oldest first: aaaaaaaa bbbbbbbb" in page
    assert "<td>galanti.wd</td><td>-0.8</td><td>-1</td><td>1.25</td>" in page
    assert (out / "bench_claims.ClaimScores.track_statistic.png").read_bytes()[:4] == b"\x89PNG"


def test_history_without_results_says_what_to_do(tmp_path):
    with pytest.raises(SystemExit, match="no asv results under .* Run `asv run` first"):
        main(["--results", str(tmp_path / "none"), "--out", str(tmp_path / "site")])
