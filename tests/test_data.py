"""Data generators: deterministic, offline, and with the stated geometry."""

import numpy as np
import pytest
import torch

from rankbias.engine import data as D


def test_same_seed_same_data_other_seed_differs():
    a, b, c = (D.gaussian_mixture(200, 16, 4, 0.5, seed=s, test=50) for s in (3, 3, 4))
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert a.spec == dict(kind="mixture", n=200, dim=16, classes=4, std=0.5, seed=3, test=50)


def test_mixture_std_is_per_coordinate_and_means_lie_on_the_sphere():
    d = D.gaussian_mixture(4000, 32, 5, 2.0, seed=0)
    means = torch.as_tensor(d.extras["means"], dtype=torch.float32)
    assert np.allclose(np.linalg.norm(d.extras["means"], axis=1), np.sqrt(32))
    noise = d.x_train - means[d.y_train]  # (N, d), each coordinate ~ N(0, std^2)
    assert float(noise.std()) == pytest.approx(2.0, rel=0.02)
    assert D.gaussian_mixture(10, 4, 2, 1.0, seed=0, radius=3.0).extras["means"] == pytest.approx(
        3.0 * D._unit_rows(np.random.default_rng(0).standard_normal((2, 4))))
    assert torch.bincount(d.y_train).tolist() == [800] * 5 and d.outputs == 5


@pytest.mark.parametrize("cosine", [0.0, 0.3, 0.6])
def test_subspace_tasks_have_the_requested_principal_cosines(cosine):
    a, b = D.subspace_tasks(300, 64, 16, cosine, seed=1)
    ua, ub = a.extras["basis"], b.extras["basis"]
    np.testing.assert_allclose(np.linalg.svd(ua.T @ ub, compute_uv=False), cosine, atol=1e-12)
    for task, basis in ((a, ua), (b, ub)):  # inputs lie in their subspace
        x = task.x_train.double().numpy()
        assert np.linalg.norm(x - x @ basis @ basis.T) < 1e-4 * np.linalg.norm(x)
        assert set(task.y_train.tolist()) == {-1.0, 1.0} and task.outputs == 1


def test_subspace_tasks_reject_a_bad_cosine():
    with pytest.raises(ValueError, match=r"0 <= cosine <= 1 and dim >= 2k\. Got cosine=1\.5"):
        D.subspace_tasks(10, 64, 16, 1.5, seed=0)


def test_separable_margin_and_constant_feature():
    d = D.separable(500, 20, 0.3, seed=2, test=100, constant_feature=True)
    w = torch.as_tensor(d.extras["teacher"], dtype=torch.float32)
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        assert torch.all(x[:, -1] == 1.0)
        assert float((y * (x[:, :-1] @ w)).min()) >= 0.3 - 1e-5


def test_linear_teacher_is_exact_without_noise():
    d = D.linear_teacher(300, 32, 8, seed=3)
    teacher = torch.as_tensor(d.extras["teacher"], dtype=torch.float32)
    torch.testing.assert_close(d.x_train @ teacher.T, d.y_train, rtol=1e-5, atol=1e-5)
    assert float(d.x_train.pow(2).sum(1).mean()) == pytest.approx(1.0, rel=0.1)  # x ~ N(0, I/d)


def test_mnist1d_is_procedural_and_leaves_numpy_global_rng_alone():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    d = D.mnist1d(seed=5, n=300, test=100)
    assert np.array_equal(np.random.get_state()[1], before)
    assert d.x_train.shape == (300, 40) and d.x_test.shape == (100, 40) and d.outputs == 10
    assert torch.equal(d.x_train, D.mnist1d(seed=5, n=300, test=100).x_train)


def test_digits_ships_with_scikit_learn():
    d = D.digits(seed=0)
    assert d.x_train.shape == (1500, 64) and d.x_test.shape == (297, 64)
    assert float(d.x_train.max()) <= 1.0 and d.outputs == 10


@pytest.mark.parametrize(
    "spec",
    [
        dict(kind="mixture", n=50, dim=6, classes=3, std=1.0, seed=0, test=10),
        dict(kind="separable", n=40, dim=5, margin=0.1, seed=0, constant_feature=True),
        dict(kind="linear_teacher", n=30, dim=4, outputs=2, seed=0),
        dict(kind="subspace_task", n=20, dim=16, k=4, cosine=0.0, seed=0, task=1),
        dict(kind="mnist1d", n=100, test=20, seed=0),
        dict(kind="digits", seed=0),
    ],
)
def test_shape_of_agrees_with_the_generated_data(spec):
    from rankbias.engine.data import make_data

    data = make_data(spec)
    assert D.shape_of(spec) == (len(data.x_train), data.dim, data.outputs)
