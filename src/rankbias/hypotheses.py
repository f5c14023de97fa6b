"""``rankbias.hypotheses``: the import path hypothesis files use, kept stable.

The hypotheses live in ``rankbias.scoring.hypotheses``; this module makes
``import rankbias.hypotheses`` and ``from rankbias.hypotheses.base import ...``
name those same modules (one set of classes, not a copy), so a user's file
written before the layered layout works unchanged.
"""

import sys

from rankbias.scoring import hypotheses as _hypotheses
from rankbias.scoring.hypotheses import base as _base

sys.modules[__name__] = _hypotheses
sys.modules[__name__ + ".base"] = _base
