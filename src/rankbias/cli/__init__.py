"""``rankbias`` command line: the only package that prints or sets exit codes.

``app`` (in ``app``) with its commands by topic: ``measure`` (ranks of saved
weights), ``train`` (one run), ``matrix`` (list, run, claims), ``scoring``
(score, compare, report) and ``export`` (a store's tables as files).
"""

from rankbias.cli import measure, train, matrix, scoring, export  # noqa: F401, I001  (each registers its commands on app)
from rankbias.cli.app import app

__all__ = ["app"]
