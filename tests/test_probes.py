"""Measurements of module runs equal direct computations: conv kernels, heads, features."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rankbias import kernels
from rankbias.engine.data import Dataset, pointer
from rankbias.engine.functional import Stacked
from rankbias.engine.models import build_model
from rankbias.engine.nets import NetSpec
from rankbias.engine.probes import ModuleTracker, feature_rank, layers
from tests.reference import lapack_svdvals


def _digits_like(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(n, 64, generator=g), torch.randint(0, 10, (n,), generator=g)
    return Dataset({"kind": "digits", "classes": 10}, "classes", x, y, x[:0], y[:0])


def _measured(spec, data, seeds=(0, 1, 2)):
    models = [build_model(spec, s, data.shape) for s in seeds]
    stacked = Stacked(models, spec, data.shape)
    return models, stacked, ModuleTracker("ce", [1e-3] * len(seeds))(stacked, data)


def _row(rows, layer, name):
    return next(v for lay, n, v in rows if lay == layer and n == name)


def test_conv_kernel_spectra_and_ranks_are_the_reshaped_kernels_lapack_ones():
    spec, data = NetSpec("conv", (1, 6, 5, 10), batchnorm=True), _digits_like()
    models, stacked, out = _measured(spec, data)
    assert layers(stacked, ["conv0", "conv1"]) == ["conv0", "conv1", "head"]
    for model, (rows, spectra) in zip(models, out):
        for k, conv in enumerate(model.convs):
            w = conv.weight.detach().numpy().reshape(conv.weight.shape[0], -1)  # (out, in k k)
            s = lapack_svdvals(w)
            np.testing.assert_allclose(spectra[k], s, rtol=1e-5, atol=1e-6)
            assert _row(rows, k, "rank_tol") == int((s / np.linalg.norm(s) > 1e-3).sum())
            assert _row(rows, k, "fro") == pytest.approx(np.linalg.norm(w), rel=1e-5)
            assert _row(rows, k, "effective_rank") == pytest.approx(float(kernels.effective_rank(s[None])[0]), rel=1e-4)


def test_attention_heads_products_and_imbalance_equal_a_direct_computation():
    spec = NetSpec("attention", (4, 8, 5), heads=2, d_head=3, vocab=5)
    data = pointer(30, seed=1, length=4, values=5)
    models, stacked, out = _measured(spec, data)
    names = layers(stacked, ["attention"])
    assert names == ["qk0", "qk1", "vo0", "vo1", "embed", "unembed", "attention"]
    for model, (rows, spectra) in zip(models, out):
        for h in range(2):
            q, k = model.query[h].detach().double(), model.key[h].detach().double()  # (d, e)
            v, o = model.value[h].detach().double(), model.out[h].detach().double()
            np.testing.assert_allclose(spectra[names.index(f"qk{h}")], lapack_svdvals((q @ k.T).numpy()),
                                       rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(spectra[names.index(f"vo{h}")], lapack_svdvals((v @ o).numpy()),
                                       rtol=1e-4, atol=1e-6)
            assert _row(rows, names.index(f"qk{h}"), "imbalance") == pytest.approx(
                float(torch.linalg.norm(q.T @ q - k.T @ k)), rel=1e-5)
            assert _row(rows, names.index(f"qk{h}"), "rank_rel") <= 3  # rank <= d_head


def test_feature_rank_active_share_and_max_abs_match_numpy():
    spec = NetSpec("bn_mlp", (6, 12, 3))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 6, generator=g), torch.randint(0, 3, (50,), generator=g)
    data = Dataset({"kind": "mixture", "classes": 3}, "classes", x, y, x[:0], y[:0])
    models, _, out = _measured(spec, data)
    for model, (rows, _) in zip(models, out):
        model.eval()
        with torch.no_grad():
            h = torch.relu(model.norms[0](model.layers[0](x))).double().numpy()  # (N, 12)
        lam = np.sort(np.linalg.eigvalsh(np.cov(h.T, bias=True)))[::-1]
        want = int(np.searchsorted(np.cumsum(lam) / lam.sum(), 0.99) + 1)
        assert _row(rows, 0, "feature_rank") == want
        assert _row(rows, 0, "active_share") == pytest.approx((h > 0).any(0).mean())
        theta = torch.cat([p.detach().flatten() for p in model.parameters()])
        assert _row(rows, -1, "max_abs") == pytest.approx(float(theta.abs().max()))


def test_feature_rank_counts_planted_components():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))[0][:, :4]  # (20, 4)
    h = torch.randn(2, 500, 4, generator=g, dtype=torch.float64) @ basis.T  # rank-4 features
    assert feature_rank(h).tolist() == [4.0, 4.0]
    assert feature_rank(torch.zeros(1, 10, 3)).tolist() == [0.0]


def test_the_factorized_product_is_the_end_to_end_map():
    spec, data = NetSpec("factorized", (6, 5, 4, 3)), _digits_like()
    data = Dataset({"kind": "mixture", "classes": 3}, "classes", data.x_train[:, :6], data.y_train % 3,
                   data.x_test[:, :6], data.y_test)
    models, stacked, out = _measured(spec, data)
    names = layers(stacked)
    for model, (rows, spectra) in zip(models, out):
        w = [layer.weight.detach().double() for layer in model.layers]
        np.testing.assert_allclose(spectra[names.index("product")], lapack_svdvals((w[2] @ w[1] @ w[0]).numpy()),
                                   rtol=1e-4, atol=1e-6)


def test_a_dead_member_is_measured_as_zeros_and_the_others_unchanged():
    spec, data = NetSpec("conv", (1, 4, 10), batchnorm=True), _digits_like()
    models = [build_model(spec, s, data.shape) for s in (0, 1)]
    with torch.no_grad():
        models[1].convs[0].weight.fill_(float("nan"))
    stacked = Stacked(models, spec, data.shape)
    alone = ModuleTracker("ce", [0.0])(Stacked(models[:1], spec, data.shape), data)[0]
    both = ModuleTracker("ce", [0.0, 0.0])(stacked, data, alive=[0])
    assert both[0][0] == alone[0]
