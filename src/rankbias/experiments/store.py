"""The run store: SQLite, the only code that touches disk.

One file (default ``rankbias.sqlite`` in the working directory), WAL mode, one
transaction per finished group of runs, so an interrupted writer leaves whole
groups or none; one process trains into a store at a time (``Store.writing``, a
lock file beside it), while any number read it.  Tables:

- ``runs``:    id (integer key), name (canonical, unique), hash, config JSON,
               status ("done" | "diverged" | "failed"), error, diverged_at,
               steps, horizon, solver JSON, provenance JSON, started, finished
- ``metrics``: (run id, step, layer, name, value); layer -1 = whole network
- ``spectra``: (run id, step, layer, sigma) with sigma a float32 blob

Metric and spectrum rows refer to their run by its integer id and are stored
clustered on their key (``WITHOUT ROWID``): keyed by the ~250-character run
name instead, the quick tier's store took 160 MB.
- ``meta``:    schema version and the marker that this is a rankbias store

Queries return pandas DataFrames.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_PATH = "rankbias.sqlite"
SCHEMA_VERSION = "2"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, hash TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, error TEXT, diverged_at REAL, steps REAL, horizon REAL, solver TEXT,
    provenance TEXT NOT NULL, started REAL, finished REAL);
CREATE TABLE IF NOT EXISTS metrics (
    run INTEGER NOT NULL, step REAL NOT NULL, layer INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
    PRIMARY KEY (run, step, layer, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS spectra (
    run INTEGER NOT NULL, step REAL NOT NULL, layer INTEGER NOT NULL, sigma BLOB NOT NULL,
    PRIMARY KEY (run, step, layer)) WITHOUT ROWID;
"""
RUN_COLUMNS = ("name, hash, config, status, error, diverged_at, steps, horizon, solver, provenance, "
               "started, finished")


class StoreError(RuntimeError):
    """A store file that is not a rankbias store, or of another schema version."""


class StoreBusy(StoreError):
    """A store that another process is training into (``Store.writing``)."""


@dataclass
class RunRecord:
    """Everything one run writes, in one transaction."""

    name: str
    hash: str
    config: dict
    status: str
    provenance: dict
    started: float
    finished: float
    steps: float = 0.0
    horizon: float = 0.0
    error: str | None = None
    diverged_at: float | None = None
    solver: dict = field(default_factory=dict)
    metrics: list[tuple] = field(default_factory=list)  # (step, layer, name, value)
    spectra: list[tuple] = field(default_factory=list)  # (step, layer, sigma ndarray)


def _check_path(path: Path) -> None:
    """Refuse, before anything opens it, a store path that names a folder or lies in a folder
    that does not exist; each gets its own message (SQLite would call both "not a database")."""
    if path.is_dir():
        raise StoreError(f"store path {path} is a directory; a store is one SQLite file. "
                         f"Pass a file path, e.g. --store {path / DEFAULT_PATH}.")
    if not path.parent.is_dir():
        raise StoreError(f"store path {path}: its folder {path.parent} does not exist. Create it "
                         f"(mkdir -p {path.parent}) or pass a path in an existing folder.")


class Store:
    """A rankbias SQLite store at ``path`` (created if missing)."""

    def __init__(self, path: str | Path = DEFAULT_PATH):
        self.path = Path(path)
        _check_path(self.path)
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            raise StoreError(
                f"store file {self.path} is not an SQLite database ({err}). "
                f"Pass another --store path or move the file away."
            ) from None
        if tables and "meta" not in tables:
            raise StoreError(
                f"store file {self.path} is an SQLite database of another program (tables: "
                f"{sorted(tables)}). Pass another --store path."
            )
        with self.db:
            self.db.executescript(_SCHEMA)
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"store file {self.path} has schema version {version}; this rankbias reads version "
                f"{SCHEMA_VERSION}. Use a new --store path for this version."
            )

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def writing(self):
        """Hold the store's writer lock while training into it: an exclusive ``fcntl.flock`` on
        ``<store>.lock``, which says who holds it.  A second process that asks for it gets
        ``StoreBusy`` naming the first, so two runs never train the same runs into one store
        (each would count them as its own).  The OS releases the lock when its holder exits,
        however it exits, so no stale lock is ever left to clear by hand."""
        lock = self.path.with_name(self.path.name + ".lock")
        handle = open(lock, "a+")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "a process that wrote no details"
                raise StoreBusy(f"store {self.path} is being trained into by another rankbias process ({holder}); "
                                f"a second writer would train the same runs again. Wait for it to finish (it "
                                f"resumes where it stops), or pass another --store.") from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
            handle.flush()
            yield self
        finally:
            handle.close()  # releases the lock

    def status(self, name: str) -> str | None:
        """The stored status of run ``name``, or None if it never finished."""
        row = self.db.execute("SELECT status FROM runs WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def write(self, rec: RunRecord) -> None:
        """Replace run ``rec.name`` and all its rows, atomically."""
        self.write_many([rec])

    def write_many(self, records: list[RunRecord]) -> None:
        """Replace every run of ``records`` and all their rows in one transaction
        (an ensemble's runs land together or not at all)."""
        with self.db:
            for rec in records:
                self._replace(rec)

    def _replace(self, rec: RunRecord) -> None:
        """Delete run ``rec.name`` and its rows if stored, then insert ``rec`` (inside a transaction)."""
        old = self.db.execute("SELECT id FROM runs WHERE name=?", (rec.name,)).fetchone()
        if old is not None:
            for table in ("metrics", "spectra"):
                self.db.execute(f"DELETE FROM {table} WHERE run=?", old)
            self.db.execute("DELETE FROM runs WHERE id=?", old)
        run = self.db.execute(
            f"INSERT INTO runs ({RUN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (rec.name, rec.hash, json.dumps(rec.config, sort_keys=True), rec.status, rec.error,
             rec.diverged_at, rec.steps, rec.horizon, json.dumps(rec.solver, sort_keys=True),
             json.dumps(rec.provenance, sort_keys=True), rec.started, rec.finished),
        ).lastrowid
        self.db.executemany("INSERT INTO metrics VALUES (?,?,?,?,?)", [(run, *row) for row in rec.metrics])
        self.db.executemany(
            "INSERT INTO spectra VALUES (?,?,?,?)",
            [(run, step, layer, np.asarray(s, dtype=np.float32).tobytes()) for step, layer, s in rec.spectra],
        )

    def runs(self) -> pd.DataFrame:
        """One row per stored run; config, solver and provenance parsed from JSON."""
        df = pd.read_sql_query(f"SELECT {RUN_COLUMNS} FROM runs ORDER BY name", self.db)
        for col in ("config", "solver", "provenance"):
            df[col] = df[col].map(json.loads)
        return df

    def metrics(self, run: str | None = None, name: str | None = None) -> pd.DataFrame:
        """Metric rows (run name, step, layer, name, value), optionally of one run / metric."""
        query = ("SELECT r.name AS run, m.step, m.layer, m.name, m.value FROM metrics m "
                 "JOIN runs r ON r.id = m.run WHERE 1=1")
        args = []
        for col, value in (("r.name", run), ("m.name", name)):
            if value is not None:
                query += f" AND {col}=?"
                args.append(value)
        return pd.read_sql_query(query + " ORDER BY r.name, m.step, m.layer, m.name", self.db, params=args)

    def spectra(self, run: str) -> pd.DataFrame:
        """(step, layer, sigma) of one run, sigma as float32 arrays."""
        return self.spectra_of([run]).get(run, pd.DataFrame(columns=["step", "layer", "sigma"]))

    def spectra_of(self, runs: list[str]) -> dict[str, pd.DataFrame]:
        """``spectra`` of each of ``runs`` that has any, read in one query: run -> (step, layer, sigma)."""
        df = pd.read_sql_query(
            "SELECT r.name AS run, s.step, s.layer, s.sigma FROM spectra s JOIN runs r ON r.id = s.run "
            "WHERE r.name IN (SELECT value FROM json_each(?)) ORDER BY r.name, s.step, s.layer", self.db,
            params=[json.dumps(list(runs))])
        df["sigma"] = df["sigma"].map(lambda b: np.frombuffer(b, dtype=np.float32))
        return {name: rows.drop(columns="run").reset_index(drop=True) for name, rows in df.groupby("run", sort=False)}


def last_step(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``metrics`` (``Store.metrics``'s columns: run, step, layer, name, value) at
    each run's last logged step: the run's final measurements."""
    return metrics[metrics.step == metrics.groupby("run").step.transform("max")]
