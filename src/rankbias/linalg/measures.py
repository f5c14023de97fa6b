"""The rank measures by name: what each counts, and the text ``rankbias ranks --explain`` prints.

``MEASURES`` and ``FORMULAS`` are the kernels' own table (``kernels.rank_common``),
so the names, their order and their formulas are written once for the CPU and
GPU kernels, the public API and the CLI.
"""

from rankbias.kernels.rank_common import FORMULAS, MEASURES

NOTE = ("rank_tol reads sigma_i / ||W||_F and rank_rel sigma_i / sigma_1; as ||W||_F >= sigma_1, rank_tol <= "
        "rank_rel at tol = eps. gd_rank counts the values above a noise bulk estimated from the median "
        "singular value, omega(beta) median(sigma) with beta = min(m, n) / max(m, n) (omega ~ 1.6 at beta = "
        "0.1); when no value stands out of that bulk (e.g. a 10 x 100 layer whose 10 values are alike) it is 0.")


def explain() -> str:
    """Each measure's formula and reference, one paragraph each, then how they compare."""
    lines = [f"{name}: {formula}." + (f" ({reference})" if reference else "")
             for name, (formula, reference) in ((name, FORMULAS[name]) for name in MEASURES)]
    return "\n\n".join([*lines, NOTE])
