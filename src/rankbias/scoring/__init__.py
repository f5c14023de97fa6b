"""rankbias.scoring: stored runs become verdicts (layer 4).

``hypotheses`` (one module per paper, criteria declared as data), ``score``
(bootstrap intervals over seeds and verdicts), ``report`` (HTML and plots) and
``claims_doc`` (the generated claims page).
"""
