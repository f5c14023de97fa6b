"""rankbias.experiments: a declared matrix becomes stored runs (layer 3).

``spec`` (TOML -> validated models), ``matrix`` (tiers -> runs), ``run`` (a
run's identity and execution), ``runner`` (local, process pool or Dask; the
only writer), ``store`` (SQLite) and the claims' matrix files in ``matrices/``.
"""
