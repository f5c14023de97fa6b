"""Data sets for the experiment matrix: deterministic by seed, offline.

Every generator returns a ``Dataset``: float32 inputs (N, d), targets, a
train/test split, and the ``spec`` (a plain dict) that regenerates it exactly.
Targets are int64 class labels (``task="classes"``), float32 +-1 labels for
the logistic loss (``task="binary"``), or float32 vectors (``task="regression"``).
Randomness comes from ``numpy.random.default_rng(seed)`` only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from rankbias.engine import images


@dataclass(frozen=True)
class Dataset:
    """Inputs x (N, d) float32 and targets y, split into train and test."""

    spec: dict
    task: str  # "classes" | "binary" | "regression"
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    extras: dict = field(default_factory=dict)  # e.g. the subspace basis of a task

    @property
    def shape(self) -> tuple[int, ...] | None:
        """The shape of one input as a signal (C, L) or image (C, H, W), for conv nets; None
        for tabular data (``SHAPES``)."""
        return SHAPES.get(self.spec.get("kind"))

    @property
    def dim(self) -> int:
        return self.x_train.shape[1]

    @property
    def outputs(self) -> int:
        """Network output width the task needs."""
        if self.task == "classes":
            return int(self.spec.get("classes", self.spec.get("values", int(self.y_train.max()) + 1)))
        if self.task == "binary":
            return 1
        return self.y_train.shape[1]

    def to(self, device) -> Dataset:
        """This data set with its tensors (and a merging partner's) on ``device``; the
        generator's other extras (numpy arrays) stay where they are."""
        def move(v):
            return v.to(device) if isinstance(v, (torch.Tensor, Dataset)) else v

        return Dataset(self.spec, self.task, *(move(t) for t in (self.x_train, self.y_train, self.x_test, self.y_test)),
                       {k: move(v) for k, v in self.extras.items()})


def _split(spec: dict, task: str, x: np.ndarray, y: np.ndarray, test: int, rng, extras=None) -> Dataset:
    """First ``len(x) - test`` of a seeded permutation train, the rest test."""
    order = rng.permutation(len(x))
    train, held = order[: len(x) - test], order[len(x) - test :]
    ydtype = torch.int64 if task == "classes" else torch.float32

    def t(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device="cpu")  # generated on the host

    return Dataset(spec, task, t(x[train]), t(y[train], ydtype), t(x[held]), t(y[held], ydtype), extras or {})


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def gaussian_mixture(n: int, dim: int, classes: int, std: float, seed: int, test: int = 0,
                     radius: float | None = None) -> Dataset:
    """K-class Gaussian mixture: class means uniform on the sphere of radius
    ``radius`` in R^d (default sqrt(d), so E||mu||^2 = d as for a standard normal
    input), x = mu_y + std z with z ~ N(0, I_d): ``std`` is the within-class
    standard deviation per coordinate (the claims' s, docs/claims.md).  Labels are balanced:
    y_i = i mod K before shuffling.  n train + ``test`` test points."""
    rng = np.random.default_rng(seed)
    r = float(np.sqrt(dim)) if radius is None else float(radius)
    means = r * _unit_rows(rng.standard_normal((classes, dim)))
    total = n + test
    y = np.arange(total) % classes
    x = means[y] + std * rng.standard_normal((total, dim))
    spec = dict(kind="mixture", n=n, dim=dim, classes=classes, std=std, seed=seed, test=test)
    if radius is not None:
        spec["radius"] = radius
    return _split(spec, "classes", x, y, test, rng, {"means": means})


def orthonormal_pair(dim: int, k: int, cosine: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Bases U_A, U_B (d, k) of two k-dim subspaces whose k principal cosines all
    equal ``cosine``: U_B = cosine U_A + sqrt(1 - cosine^2) U_perp, U_perp
    orthogonal to U_A.  Needs d >= 2k."""
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2 * k)))
    ua, uperp = q[:, :k], q[:, k:]
    return ua, cosine * ua + np.sqrt(1.0 - cosine**2) * uperp


def subspace_tasks(n: int, dim: int, k: int, cosine: float, seed: int, test: int = 0) -> tuple[Dataset, Dataset]:
    """Two binary tasks for model merging: task T's inputs x = U_T z, z ~ N(0, I_k),
    lie in a k-dim subspace of R^d (principal cosine ``cosine`` between the two,
    0 = orthogonal); labels y = sign(w_T . z) with a random unit teacher w_T."""
    if not 0.0 <= cosine <= 1.0 or dim < 2 * k:
        raise ValueError(
            f"subspace_tasks needs 0 <= cosine <= 1 and dim >= 2k. Got cosine={cosine}, dim={dim}, k={k}. "
            f"Pick a cosine in [0, 1] and dim of at least {2 * k}."
        )
    rng = np.random.default_rng(seed)
    bases = orthonormal_pair(dim, k, cosine, rng)
    tasks = []
    for index, basis in enumerate(bases):
        z = rng.standard_normal((n + test, k))
        teacher = _unit_rows(rng.standard_normal((1, k)))[0]
        y = np.where(z @ teacher >= 0, 1.0, -1.0)
        spec = dict(kind="subspace_task", n=n, dim=dim, k=k, cosine=cosine, seed=seed, test=test, task=index)
        tasks.append(_split(spec, "binary", z @ basis.T, y, test, rng, {"basis": basis}))
    return tasks[0], tasks[1]


def subspace_pair(n: int, dim: int, k: int, cosine: float, seed: int, test: int = 0) -> Dataset:
    """Task A of ``subspace_tasks`` carrying task B as ``extras["partner"]``: a run
    on it trains one net per task from the same init and records how the merged
    net (W = W_A + W_B) does on each task (``rankbias.experiments.execute``)."""
    a, b = subspace_tasks(n, dim, k, cosine, seed, test)
    spec = dict(kind="subspace_pair", n=n, dim=dim, k=k, cosine=cosine, seed=seed, test=test)
    return Dataset(spec, a.task, a.x_train, a.y_train, a.x_test, a.y_test, {**a.extras, "partner": b})


def separable(n: int, dim: int, margin: float, seed: int, test: int = 0, constant_feature: bool = False) -> Dataset:
    """Linearly separable binary data with margin >= ``margin`` along a unit teacher w:
    x ~ N(0, I_d), y = sign(w . x), then x += y margin w.  ``constant_feature``
    appends a coordinate equal to 1 (d + 1 inputs), which keeps some ReLU units
    always active."""
    rng = np.random.default_rng(seed)
    w = _unit_rows(rng.standard_normal((1, dim)))[0]
    x = rng.standard_normal((n + test, dim))
    y = np.where(x @ w >= 0, 1.0, -1.0)
    x += (y * margin)[:, None] * w
    if constant_feature:
        x = np.hstack([x, np.ones((len(x), 1))])
    spec = dict(kind="separable", n=n, dim=dim, margin=margin, seed=seed, test=test, constant_feature=constant_feature)
    return _split(spec, "binary", x, y, test, rng, {"teacher": w})


def linear_teacher(n: int, dim: int, outputs: int, seed: int, noise: float = 0.0, test: int = 0) -> Dataset:
    """Regression y = T x + noise e with x ~ N(0, I / d), a full-rank Gaussian
    teacher T (outputs, d) with entries N(0, 1), e ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    teacher = rng.standard_normal((outputs, dim))
    x = rng.standard_normal((n + test, dim)) / np.sqrt(dim)
    y = x @ teacher.T + noise * rng.standard_normal((n + test, outputs))
    spec = dict(kind="linear_teacher", n=n, dim=dim, outputs=outputs, seed=seed, noise=noise, test=test)
    return _split(spec, "regression", x, y, test, rng, {"teacher": teacher})


def low_rank_teacher(n: int, dim: int, outputs: int, rank: int, seed: int, test: int = 0) -> Dataset:
    """Noiseless regression y = T x with x ~ N(0, I_d) and a teacher of rank ``rank``,
    T = A B^T / sqrt(rank d), A (outputs, rank) and B (d, rank) standard normal, so each
    target has unit variance; with n < d the problem is under-determined (huh.depth)."""
    if not 1 <= rank <= min(dim, outputs):
        raise ValueError(f"low_rank_teacher's 'rank' must be in [1, min(dim, outputs)] = [1, {min(dim, outputs)}]; "
                         f"got {rank}. Use e.g. rank = 4.")
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((outputs, rank)), rng.standard_normal((dim, rank))
    teacher = a @ b.T / np.sqrt(rank * dim)
    x = rng.standard_normal((n + test, dim))
    spec = dict(kind="low_rank_teacher", n=n, dim=dim, outputs=outputs, rank=rank, seed=seed, test=test)
    return _split(spec, "regression", x, x @ teacher.T, test, rng, {"teacher": teacher})


def relu_teacher(n: int, dim: int, units: int, seed: int, test: int = 0) -> Dataset:
    """Teacher-student regression y = sum_j relu(w_j . x) (one output) with x ~ N(0, I_d)
    and ``units`` teacher vectors w_j ~ N(0, I / d) (andriushchenko.sam)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((units, dim)) / np.sqrt(dim)
    x = rng.standard_normal((n + test, dim))
    y = np.maximum(x @ w.T, 0.0).sum(1, keepdims=True)
    spec = dict(kind="relu_teacher", n=n, dim=dim, units=units, seed=seed, test=test)
    return _split(spec, "regression", x, y, test, rng, {"teacher": w})


def diagonal_target(n: int, low: float, high: float, seed: int = 0) -> Dataset:
    """The matrix target D = diag(linspace(low, high, n)) as n samples x_i = n e_i with
    targets y_i = n D e_i (no test set; ``seed`` only orders them).  Under the loss
    ``mse_mean``, (1 / n^2) sum_i ||n (W - D) e_i||^2, a linear map W has loss
    ||W - D||_F^2 exactly: the objective of Kobayashi et al. 2024's factorization claim
    (kobayashi.factor)."""
    if not (n >= 1 and 0 < low <= high):
        raise ValueError(f"diagonal_target needs n >= 1 and 0 < low <= high; got n={n}, low={low}, high={high}. "
                         f"Use e.g. n = 5, low = 0.2, high = 1.0.")
    x = n * np.eye(n)
    y = x @ np.diag(np.linspace(low, high, n))
    spec = dict(kind="diagonal_target", n=n, low=low, high=high, seed=seed)
    return _split(spec, "regression", x, y, 0, np.random.default_rng(seed), {"target": np.linspace(low, high, n)})


def mnist1d(seed: int, n: int = 4000, test: int = 1000) -> Dataset:
    """MNIST-1D (Greydanus 2020) from its procedural generator: 10 classes, 40
    inputs, no download.  The package seeds numpy's global RNG; its state is
    restored afterwards."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.train_split, args.seed = n + test, n / (n + test), seed
    state = np.random.get_state()
    try:
        made = make_dataset(args)
    finally:
        np.random.set_state(state)
    x = np.concatenate([made["x"], made["x_test"]])
    y = np.concatenate([made["y"], made["y_test"]])
    spec = dict(kind="mnist1d", n=n, seed=seed, test=test, classes=10)
    return _split(spec, "classes", x, y, test, np.random.default_rng(seed))


def digits(seed: int, test: int = 297) -> Dataset:
    """scikit-learn's 8x8 digits (1797 images shipped with the package, 10
    classes), pixels scaled to [0, 1]; a seeded split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    spec = dict(kind="digits", seed=seed, test=test, classes=10)
    return _split(spec, "classes", bunch.data / 16.0, bunch.target, test, np.random.default_rng(seed))


def pointer(n: int, seed: int, length: int = 8, values: int = 16, test: int = 0) -> Dataset:
    """The pointer task of an attention-only transformer: sequences of ``length`` tokens in
    0 .. values - 1 (inputs (N, length), token ids stored as floats) whose first token is a
    pointer p, uniform in 1 .. length - 1; the label is the token x_p at that position
    (a class in 0 .. values - 1).  Tokens x_1 .. x_{length-1} are uniform."""
    if not (length >= 2 and values >= length):
        raise ValueError(f"pointer needs length >= 2 and values >= length (the pointer is a token); got "
                         f"length={length}, values={values}. Use e.g. length = 8, values = 16.")
    rng = np.random.default_rng(seed)
    x = rng.integers(0, values, (n + test, length))
    x[:, 0] = rng.integers(1, length, n + test)
    y = x[np.arange(n + test), x[:, 0]]
    spec = dict(kind="pointer", n=n, seed=seed, length=length, values=values, test=test)
    return _split(spec, "classes", x, y, test, rng)


def _images(kind: str, seed: int, n: int, test: int, root: str | None) -> Dataset:
    x, y, xt, yt = images.read(kind, root, n, test, seed)
    spec = dict(kind=kind, n=n, test=test, seed=seed, classes=10)  # where the files lie is not part of the data

    def t(a, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device="cpu")

    return Dataset(spec, "classes", t(x), t(y, torch.int64), t(xt), t(yt, torch.int64))


def mnist(seed: int, n: int = 60000, test: int = 10000, root: str | None = None) -> Dataset:
    """MNIST from torchvision's files under ``root`` (``rankbias.engine.images``): 28 x 28 grey
    images, 10 classes; n of the training set (chosen by ``seed``), the first ``test`` test images."""
    return _images("mnist", seed, n, test, root)


def fashion_mnist(seed: int, n: int = 60000, test: int = 10000, root: str | None = None) -> Dataset:
    """FashionMNIST (Xiao et al. 2017) from torchvision's files under ``root``, as ``mnist``."""
    return _images("fashion_mnist", seed, n, test, root)


def cifar10(seed: int, n: int = 50000, test: int = 10000, root: str | None = None) -> Dataset:
    """CIFAR-10 (Krizhevsky 2009) from torchvision's python batches under ``root``: 3 x 32 x 32
    colour images, 10 classes, chosen as ``mnist``'s."""
    return _images("cifar10", seed, n, test, root)


# data spec "kind" -> generator; "subspace_task" makes a pair and a spec's "task" picks one,
# "subspace_pair" keeps both for a merging run
GENERATORS = {
    "mixture": gaussian_mixture,
    "separable": separable,
    "linear_teacher": linear_teacher,
    "low_rank_teacher": low_rank_teacher,
    "relu_teacher": relu_teacher,
    "diagonal_target": diagonal_target,
    "subspace_task": subspace_tasks,
    "subspace_pair": subspace_pair,
    "mnist1d": mnist1d,
    "digits": digits,
    "pointer": pointer,
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "cifar10": cifar10,
}


def shape_of(spec: dict) -> tuple[int, int, int]:
    """(training samples, input dim, network outputs) of a data spec, without
    generating the data; raises KeyError / TypeError for an incomplete spec."""
    kind = spec["kind"]
    if kind == "mixture":
        return spec["n"], spec["dim"], spec["classes"]
    if kind == "separable":
        return spec["n"], spec["dim"] + int(spec.get("constant_feature", False)), 1
    if kind in ("linear_teacher", "low_rank_teacher"):
        return spec["n"], spec["dim"], spec["outputs"]
    if kind == "relu_teacher":
        return spec["n"], spec["dim"], 1
    if kind == "diagonal_target":
        return spec["n"], spec["n"], spec["n"]
    if kind in ("subspace_task", "subspace_pair"):
        return spec["n"], spec["dim"], 1
    if kind == "mnist1d":
        return spec.get("n", 4000), 40, 10
    if kind == "digits":
        return 1797 - spec.get("test", 297), 64, 10
    if kind == "pointer":
        return spec["n"], spec.get("length", 8), spec.get("values", 16)
    if kind in images.IMAGE_SETS:
        return spec.get("n", images.TRAIN_SIZE[kind]), int(np.prod(SHAPES[kind])), 10
    raise KeyError(kind)


# one input's shape where the data are signals or images (conv nets read x (N, prod(shape)) as (N, *shape))
SHAPES = {"mnist1d": (1, 40), "digits": (1, 8, 8), "mnist": (1, 28, 28), "fashion_mnist": (1, 28, 28),
          "cifar10": (3, 32, 32)}
SEQUENCES = ("pointer",)  # token-sequence tasks, for attention nets

# the loss a task is trained with when a caller names none (``losses.LOSSES``)
DEFAULT_LOSS = {"classes": "ce", "binary": "logistic", "regression": "mse"}
TASKS = {"mixture": "classes", "separable": "binary", "linear_teacher": "regression",
         "low_rank_teacher": "regression", "relu_teacher": "regression", "diagonal_target": "regression",
         "subspace_task": "binary", "subspace_pair": "binary", "mnist1d": "classes", "digits": "classes", "pointer": "classes",
         "mnist": "classes", "fashion_mnist": "classes", "cifar10": "classes"}


def default_loss(kind: str) -> str:
    """The loss a data set of ``kind`` trains with by default: ce for classes, logistic
    for +-1 labels, mse for regression."""
    return DEFAULT_LOSS[TASKS[kind]]


def make_data(spec: dict) -> Dataset:
    """The data set a spec {"kind": ..., **generator kwargs} describes."""
    kind, kwargs = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if kind not in GENERATORS:
        raise ValueError(
            f"Invalid data spec: 'kind' must be one of {sorted(GENERATORS)}; got {kind!r}. Pick one of those."
        )
    if kind == "subspace_task":
        task = kwargs.pop("task", 0)
        return subspace_tasks(**kwargs)[task]
    return GENERATORS[kind](**kwargs)


def spec_for(kind: str, widths: tuple[int, ...], n: int, std: float, margin: float, seed: int, test: int) -> dict:
    """The data spec of ``kind`` whose input and output widths are a net's ``widths``
    (first and last), with the generator's other fields from the arguments it takes."""
    d_in, d_out = widths[0], widths[-1]
    fields = {"mixture": dict(n=n, dim=d_in, classes=d_out, std=std, seed=seed, test=test),
              "separable": dict(n=n, dim=d_in, margin=margin, seed=seed, test=test),
              "linear_teacher": dict(n=n, dim=d_in, outputs=d_out, seed=seed, test=test),
              "mnist1d": dict(n=n, seed=seed, test=test),
              "digits": dict(seed=seed, test=test)}
    if kind not in fields:
        raise ValueError(f"'--data' must be one of {', '.join(fields)}; got {kind!r}. Pick one of those.")
    return dict(kind=kind, **fields[kind])
