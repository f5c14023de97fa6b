"""``python -m rankbias.cli``: the command line."""

from rankbias.cli import app

app()
