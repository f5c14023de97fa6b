"""Where a run was made: package versions, host, device and the git commit.

Every stored run carries this dict (benchopt's ``sys_info`` plays the same part),
so a scorecard can say which code made each of its runs.
"""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

import numba
import numpy as np
import torch

from rankbias import __version__
from rankbias.engine.device import describe


def git_commit() -> str | None:
    """The commit of the checkout this package sits in, or None (an installed wheel, no git)."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def provenance(device: torch.device | None = None) -> dict:
    """Versions, host, the device a run trained on (``rankbias.engine.device.describe``) and,
    if the package sits in a git checkout, its commit."""
    return {
        "rankbias": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
        **(describe(device) if device is not None else {}),
    }
