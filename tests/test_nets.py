"""Networks: architecture, init, bias-free, frozen outer layer, spec errors."""

import pytest
import torch

from rankbias.engine.nets import NetSpec, build


def test_deep_linear_is_the_product_of_its_weights():
    net = build(NetSpec("deep_linear", (6, 5, 4, 3)), seed=0)
    x = torch.randn(7, 6)
    W1, W2, W3 = net.weights()
    torch.testing.assert_close(net(x), x @ (W3 @ W2 @ W1).T)
    assert all(layer.bias is None for layer in net.layers)


def test_deep_relu_and_linear_tail():
    spec = NetSpec("deep_relu", (4, 8, 8, 8, 2), linear_layers=2)
    assert [spec.relu_after(i) for i in range(4)] == [True, True, False, False]
    net = build(spec, seed=1)
    x = torch.randn(5, 4)
    W = net.weights()
    h = torch.relu(torch.relu(x @ W[0].T) @ W[1].T)
    torch.testing.assert_close(net(x), h @ W[2].T @ W[3].T)


def test_residual_layers_add_their_input():
    net = build(NetSpec("residual_relu", (3, 6, 6, 6, 1), linear_layers=2), seed=2)
    with torch.no_grad():
        net.layers[1].weight.zero_()  # relu(0) = 0: a residual layer becomes the identity
    x = torch.randn(4, 3)
    W = net.weights()
    h = torch.relu(x @ W[0].T)  # 3 -> 6: widths differ, no skip
    torch.testing.assert_close(net(x), (h @ W[2].T) @ W[3].T)


def test_init_is_pytorch_default_times_scale_and_deterministic():
    a = build(NetSpec("deep_relu", (50, 40, 10), init_scale=0.15), seed=3)
    b = build(NetSpec("deep_relu", (50, 40, 10), init_scale=0.15), seed=3)
    c = build(NetSpec("deep_relu", (50, 40, 10), init_scale=0.15), seed=4)
    w = a.weights()[0].detach()
    bound = 0.15 / 50**0.5
    assert float(w.abs().max()) <= bound and float(w.abs().max()) > 0.9 * bound
    assert float(w.std()) == pytest.approx(bound / 3**0.5, rel=0.05)  # uniform on [-b, b]
    assert all(torch.equal(x, y) for x, y in zip(a.weights(), b.weights()))
    assert not torch.equal(a.weights()[0], c.weights()[0])


def test_fixed_outer_layer_does_not_train():
    net = build(NetSpec("shallow_relu", (4, 16, 1), fixed_outer=True), seed=0)
    outer = net.weights()[1].detach().clone()
    assert [p.requires_grad for p in net.parameters()] == [True, False]
    net(torch.randn(3, 4)).sum().backward()
    assert net.weights()[1].grad is None and torch.equal(net.weights()[1], outer)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(arch="mlp", widths=(3, 2)), r"'arch' must be one of \['shallow_relu'.*got 'mlp'"),
        (dict(arch="deep_relu", widths=(3,)), r"'widths' must list >= 2 positive ints"),
        (dict(arch="shallow_relu", widths=(3, 4, 5, 1)), r"shallow_relu needs widths \(d_in, m, d_out\)"),
        (dict(arch="deep_relu", widths=(3, 4, 1), fixed_outer=True), r"'fixed_outer' applies to shallow_relu only"),
        (dict(arch="deep_relu", widths=(3, 4, 1), linear_layers=3), r"'linear_layers' must be in \[1, 2\]; got 3"),
        (dict(arch="deep_relu", widths=(3, 4, 1), init_scale=0), r"'init_scale' must be > 0; got 0"),
    ],
)
def test_spec_errors_name_field_rule_and_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        NetSpec(**kwargs)
