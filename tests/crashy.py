"""Units of work that kill their worker process, for the runner's retry tests.
Importable by spawned workers (pytest puts tests/ on sys.path, which spawn copies)."""

import os
from pathlib import Path

from rankbias.experiments.execute import train_group


def die_once(group, device="auto"):
    """Kill the worker the first time any group runs (a marker file remembers), then train."""
    marker = Path(os.environ["RANKBIAS_TEST_MARKER"])
    if not marker.exists():
        marker.write_text("died")
        os._exit(9)
    return train_group(group, device)


def die_on_wd(group, device="auto"):
    """Kill the worker every time a group holding a run with wd = 0.05 runs; train the others."""
    if any(c.dynamics.wd == 0.05 for c in group):
        os._exit(9)
    return train_group(group, device)
