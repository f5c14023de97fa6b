"""Slow, obvious references for the tests: planted spectra and float64 LAPACK."""

from __future__ import annotations

# small matrix files for tests that train for real: a few seconds on a CPU
TINY_MATRIX = """
[[scenario]]
id = "s"
paper = "p"
data = { kind = "mixture", n = 80, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 12, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 30, log_points = 3 }
grid = { "dynamics.wd" = [0.0, 0.01, 0.05] }
"""
TINY_GALANTI_WD = """
[[scenario]]
id = "galanti.wd"
paper = "galanti"
data = { kind = "mixture", n = 60, dim = 6, classes = 3, std = 0.5, seed = 0 }
net = { arch = "deep_relu", widths = [6, 8, 8, 3] }
dynamics = { kind = "sgd", loss = "ce", lr = 0.1, batch = 8, steps = 20, log_points = 2 }
grid = { "dynamics.wd" = [0.0, 0.01, 0.05] }
"""

import numpy as np


def haar(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """(n, k) matrix with Haar-distributed orthonormal columns, float64."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def spectrum(kind: str, r: int, rng: np.random.Generator) -> np.ndarray:
    """A descending spectrum of length r, normalized to sigma_1 = 1 (or all 0)."""
    i = np.arange(1, r + 1)
    if kind == "fast_decay":
        s = np.exp(-0.25 * (i - 1))
    elif kind == "mp_bulk":  # singular values of a square Gaussian matrix
        s = np.linalg.svd(rng.standard_normal((r, r)), compute_uv=False)
    elif kind == "heavy_tail":
        s = i ** -0.6
    elif kind == "spikes_noise":
        s = np.concatenate([np.geomspace(10, 3, min(5, r)), 0.5 + 0.3 * rng.random(max(r - 5, 0))])
    elif kind == "low_rank":
        s = np.where(i <= max(r // 4, 1), 1.0 / i, 0.0)
    elif kind == "rank_one":
        s = (i == 1).astype(float)
    elif kind == "zero":
        return np.zeros(r)
    else:
        raise KeyError(kind)
    s = np.sort(s)[::-1]
    return s / s[0]


SPECTRA = ("fast_decay", "mp_bulk", "heavy_tail", "spikes_noise", "low_rank", "rank_one", "zero")


def planted(kind: str, batch: int, m: int, n: int, dtype=np.float64, seed: int = 0):
    """(A (batch, m, n) of dtype, s (batch, min(m, n)) float64): A_i = U diag(s) V^T."""
    rng = np.random.default_rng(seed)
    r = min(m, n)
    A = np.empty((batch, m, n))
    S = np.empty((batch, r))
    for b in range(batch):
        S[b] = spectrum(kind, r, rng)
        A[b] = (haar(rng, m, r) * S[b]) @ haar(rng, n, r).T
    return A.astype(dtype), S


def lapack_svdvals(A: np.ndarray) -> np.ndarray:
    """float64 LAPACK (gesdd) singular values of A (..., m, n)."""
    return np.linalg.svd(np.asarray(A, dtype=np.float64), compute_uv=False)


def rel_err(approx: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """||approx - exact|| / ||exact|| over the last axis (0 where exact is 0)."""
    num = np.linalg.norm(np.asarray(approx, dtype=np.float64) - exact, axis=-1)
    den = np.linalg.norm(exact, axis=-1)
    return np.where(den > 0, num / np.where(den > 0, den, 1), num)


def subspace_iteration_svdvals(A: np.ndarray, omega: np.ndarray, power_iters: int, k: int) -> np.ndarray:
    """Top-k singular values (batch, k) of the randomized SVD of A (batch, m, n) from the sketch omega
    (batch, n, l), all in float64 with Householder QR at every step: Halko, Martinsson & Tropp 2011,
    Alg. 4.4 (subspace iteration) then Alg. 5.1 (the SVD of Q^T A)."""
    X = np.asarray(A, dtype=np.float64)
    Q = np.linalg.qr(X @ omega)[0]
    for _ in range(power_iters):
        Q = np.linalg.qr(X @ np.linalg.qr(X.transpose(0, 2, 1) @ Q)[0])[0]
    return np.linalg.svd(Q.transpose(0, 2, 1) @ X, compute_uv=False)[:, :k]


# --- the per-run trainer: one run, a plain torch.optim.SGD loop ------------------------------
# The engine trains GD / SGD runs only as ensembles (rankbias.engine.ensemble); this
# slow, obvious loop is what an ensemble member must equal (the STUMPY ``naive.py`` pattern).


def batch_indices(n: int, batch: int, generator):
    """Endless mini-batches (batch,) int64: each epoch a fresh permutation of range(n)
    cut into floor(n / batch) batches; the remaining n mod batch are left out."""
    import torch

    while True:
        order = torch.randperm(n, generator=generator, device="cpu")
        for start in range(0, n - batch + 1, batch):
            yield order[start : start + batch]


def train(net, data, spec, on_log=None):
    """Train ``net`` in place on ``data`` by ``spec`` (``DynamicsSpec``), one run alone; call
    ``on_log(at, net)`` at every log point (step for gd/sgd, flow time for gf) after
    recording losses.  gd / sgd: ``torch.optim.SGD(lr, weight_decay=wd)`` on batches from
    ``batch_indices``; gf: the engine's own ``dynamics.flow``."""
    import math

    import torch

    from rankbias.engine.dynamics import RunResult, _diverged, _evaluate, budget, flow, log_steps
    from rankbias.engine.losses import loss_value

    if spec.kind == "gf":
        return flow(net, data, spec, on_log)
    if spec.gated:
        raise ValueError("the reference loop has no gate; a gated gd run trains as an ensemble")
    n = len(data.x_train)
    batch, total = budget(spec, n)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.wd)
    gen = torch.Generator().manual_seed(spec.seed)
    logs, result = set(log_steps(total, spec.log_points, spec.tail_logs)), RunResult("done", 0, 0.0)
    batches = batch_indices(n, batch, gen)
    for step in range(total + 1):
        if step in logs:
            row = _evaluate(net, data, spec.loss, step)
            if not math.isfinite(row["train_loss"]):
                return _diverged(result, spec.lr * spec.wd, step)
            result.log.append(row)
            if on_log is not None:
                on_log(step, net)
        if step == total:
            break
        idx = slice(None) if batch == n else next(batches)
        opt.zero_grad(set_to_none=True)
        value = loss_value(spec.loss, net(data.x_train[idx]), data.y_train[idx])
        if not torch.isfinite(value):
            return _diverged(result, spec.lr * spec.wd, step)
        value.backward()
        opt.step()
        result.steps = step + 1
    result.horizon = spec.lr * spec.wd * total
    return result


def torch_optimizer(params, spec):
    """The ``torch.optim`` optimizer a ``DynamicsSpec`` names, with its hyper-parameters, and
    its ``torch.optim.lr_scheduler`` (or None) over ``total`` steps: the per-run oracle of
    ``rankbias.engine.optim``."""
    import torch

    from rankbias.engine.optim import hyper_of

    h, name = hyper_of(spec), spec.optimizer or "sgd"
    if name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, weight_decay=spec.wd, momentum=h["momentum"],
                               nesterov=bool(spec.nesterov))
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=spec.lr, weight_decay=spec.wd, betas=(h["beta1"], h["beta2"]), eps=h["eps"])
    return torch.optim.RMSprop(params, lr=spec.lr, weight_decay=spec.wd, alpha=h["alpha"], eps=h["eps"],
                               momentum=h["momentum"])


def module_loop(model, data, spec, total: int):
    """Train ``model`` alone for ``total`` steps of ``spec`` (a ``DynamicsSpec``): ``torch_optimizer``
    and its schedule on the batches ``batch_indices`` draws from the run's seed; with ``sam``,
    SAM by hand (Foret et al. 2021): g at p, e = r g / ||g||, the gradient at p + e (BatchNorm's
    running statistics restored after that pass), p restored, then the optimizer's step."""
    import math

    import torch

    from rankbias.engine.losses import loss_value

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch_optimizer(params, spec)
    sched = None
    if spec.schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: (1 + math.cos(math.pi * t / total)) / 2)
    elif spec.schedule == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=spec.step_every, gamma=spec.gamma)
    n = len(data.x_train)
    batch = n if spec.kind == "gd" else spec.batch
    batches = batch_indices(n, batch, torch.Generator().manual_seed(spec.seed))

    def gradient(x, y):
        opt.zero_grad(set_to_none=True)
        loss_value(spec.loss, model(x), y).backward()

    model.train()
    for _ in range(total):
        idx = slice(None) if batch == n else next(batches)
        x, y = data.x_train[idx], data.y_train[idx]
        gradient(x, y)
        if spec.sam is not None:
            with torch.no_grad():
                norm = torch.sqrt(sum((p.grad**2).sum() for p in params))
                kept = [p.clone() for p in params]
                for p in params:
                    p.add_(spec.sam / norm * p.grad if norm > 0 else 0.0)
            saved = {k: v.clone() for k, v in model.state_dict().items() if k not in dict(model.named_parameters())}
            gradient(x, y)
            model.load_state_dict(saved, strict=False)
            with torch.no_grad():
                for p, k in zip(params, kept):
                    p.copy_(k)
        opt.step()
        if sched is not None:
            sched.step()
    return model
