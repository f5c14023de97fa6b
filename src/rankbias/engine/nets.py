"""The networks of the experiment matrix: bias-free by default.

One ``Net`` covers the four architectures of the claims (docs/claims.md), set by a frozen
``NetSpec``:

- ``shallow_relu``: x -> W2 relu(W1 x); ``fixed_outer`` freezes W2 at init.
- ``deep_linear``:  x -> W_L ... W_1 x.
- ``deep_relu``:    ReLU after every layer but the last ``linear_layers``.
- ``residual_relu``: as deep_relu, but a ReLU layer whose input and output
  widths agree adds its input back: h <- h + relu(W h).

Init: PyTorch's default for nn.Linear, W_ij ~ U(-b, b) with b = 1 / sqrt(fan_in)
(kaiming_uniform with a = sqrt(5)), times ``init_scale``, drawn from a
``torch.Generator`` seeded by the caller (``init_params``): no global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

MLP_ARCHS = ("shallow_relu", "deep_linear", "deep_relu", "residual_relu")
# trained through torch.func (rankbias.engine.models, rankbias.engine.functional)
MODULE_ARCHS = ("conv", "bn_mlp", "attention", "factorized")
ARCHS = MLP_ARCHS + MODULE_ARCHS


@dataclass(frozen=True)
class NetSpec:
    """widths = (d_in, hidden..., d_out); linear_layers = how many final layers
    have no ReLU after them (1: only the output layer; 2: "ends in 2 linear layers").

    The module archs read widths as (rankbias.engine.models): ``conv`` (input channels,
    block channels..., classes) with ``kernel`` (3), ``padding`` (kernel // 2), ``batchnorm``
    and ``residual``; ``bn_mlp`` and ``factorized`` (d_in, hidden..., d_out); ``attention``
    (sequence length, d_model, outputs) with ``heads``, ``d_head``, ``vocab`` and ``readout`` (0)."""

    arch: str
    widths: tuple[int, ...]
    bias: bool = False
    init_scale: float = 1.0
    fixed_outer: bool = False
    linear_layers: int = 1
    kernel: int | None = None
    padding: int | None = None
    batchnorm: bool | None = None
    residual: bool | None = None
    heads: int | None = None
    d_head: int | None = None
    vocab: int | None = None
    readout: int | None = None
    init_std: float | None = None  # module archs: weights N(0, init_std^2) instead of PyTorch's uniform

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        problems = []
        if self.arch not in ARCHS:
            problems.append(f"'arch' must be one of {list(ARCHS)}; got {self.arch!r}")
        if len(self.widths) < 2 or min(self.widths) < 1:
            problems.append(f"'widths' must list >= 2 positive ints (d_in, ..., d_out); got {self.widths}")
        if self.arch == "shallow_relu" and len(self.widths) != 3:
            problems.append(f"shallow_relu needs widths (d_in, m, d_out); got {self.widths}")
        if self.fixed_outer and self.arch != "shallow_relu":
            problems.append(f"'fixed_outer' applies to shallow_relu only; got arch {self.arch!r}")
        if not 1 <= self.linear_layers <= max(len(self.widths) - 1, 1):
            problems.append(f"'linear_layers' must be in [1, {len(self.widths) - 1}]; got {self.linear_layers}")
        if not self.init_scale > 0:
            problems.append(f"'init_scale' must be > 0; got {self.init_scale}")
        problems.extend(self._module_problems())
        if problems:
            raise ValueError("Invalid NetSpec: " + "; ".join(problems) + ". Fix these fields of the net spec.")

    def _module_problems(self) -> list[str]:
        """Which fields each arch takes, and their ranges."""
        own = {"conv": ("kernel", "padding", "batchnorm", "residual"), "attention": ("heads", "d_head", "vocab",
                                                                                      "readout")}.get(self.arch, ())
        fields = ("kernel", "padding", "batchnorm", "residual", "heads", "d_head", "vocab", "readout")
        foreign = [f for f in fields if getattr(self, f) is not None and f not in own]
        p = [f"arch {self.arch!r} takes none of {foreign}" + (f"; it takes {list(own)}" if own else "")] if foreign else []
        if self.init_std is not None and not (self.arch in MODULE_ARCHS and math.isfinite(self.init_std)
                                              and self.init_std > 0):
            p.append(f"'init_std' must be a finite float > 0, for {list(MODULE_ARCHS)}; got {self.init_std!r} "
                     f"for arch {self.arch!r}")
        if self.arch in MODULE_ARCHS and (self.fixed_outer or self.linear_layers != 1):
            p.append(f"'fixed_outer' and 'linear_layers' apply to {list(MLP_ARCHS)} only; got arch {self.arch!r}")
        for field in ("kernel", "heads", "d_head", "vocab"):
            value = getattr(self, field)
            if value is not None and value < 1:
                p.append(f"'{field}' must be an int >= 1; got {value}")
        if self.padding is not None and self.padding < 0:
            p.append(f"'padding' must be an int >= 0; got {self.padding}")
        if self.arch == "conv" and len(self.widths) < 3:
            p.append(f"conv needs widths (in channels, block channels..., classes); got {self.widths}")
        if self.arch == "attention":
            if len(self.widths) != 3:
                p.append(f"attention needs widths (sequence length, d_model, outputs); got {self.widths}")
            missing = [f for f in ("heads", "d_head", "vocab") if getattr(self, f) is None]
            if missing:
                p.append(f"attention needs {missing}, e.g. heads = 4, d_head = 8, vocab = 16")
            if self.readout is not None and not 0 <= self.readout < self.widths[0]:
                p.append(f"'readout' must be a position in [0, {self.widths[0] - 1}]; got {self.readout}")
        return p

    @property
    def depth(self) -> int:
        return len(self.widths) - 1

    def relu_after(self, i: int) -> bool:
        """Whether layer i (0-based) is followed by a ReLU."""
        if self.arch == "deep_linear":
            return False
        return i < self.depth - self.linear_layers

    def residual_at(self, i: int) -> bool:
        """Whether layer i adds its input back: a ReLU layer of a residual net whose widths agree."""
        return self.arch == "residual_relu" and self.relu_after(i) and self.widths[i] == self.widths[i + 1]


def activate(spec: NetSpec, k: int, h: torch.Tensor, z: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Output of layer k from its input h (..., n_{k-1}) and pre-activation z (..., n_k):
    z itself after a linear layer, relu(z) after a ReLU layer, and h + relu(z) for a
    residual ReLU layer whose widths agree.  Every forward pass uses this rule;
    ``inplace`` overwrites z (for callers that keep no pre-activations)."""
    if not spec.relu_after(k):
        return z
    out = z.relu_() if inplace else torch.relu(z)
    if spec.residual_at(k):
        return out.add_(h) if inplace else h + out
    return out


def init_params(spec: NetSpec, seed: int) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """Each layer's initial (weight (out, in), bias (out,) or None), first layer first:
    U(-b, b) with b = init_scale / sqrt(fan_in), drawn in this order from one
    generator seeded by ``seed``, on the CPU: the same init whatever device trains it."""
    generator = torch.Generator().manual_seed(seed)
    params = []
    for a, b in zip(spec.widths[:-1], spec.widths[1:]):
        bound = spec.init_scale / a**0.5
        weight = (2 * torch.rand((b, a), generator=generator, device="cpu") - 1) * bound
        bias = (2 * torch.rand((b,), generator=generator, device="cpu") - 1) * bound if spec.bias else None
        params.append((weight, bias))
    return params


class Net(nn.Module):
    """A bias-free (by default) MLP of one of ``ARCHS``; see the module docstring."""

    def __init__(self, spec: NetSpec, seed: int, device="cpu"):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(
            nn.Linear(a, b, bias=spec.bias, device=device) for a, b in zip(spec.widths[:-1], spec.widths[1:])
        )
        with torch.no_grad():
            for layer, (weight, bias) in zip(self.layers, init_params(spec, seed)):
                layer.weight.copy_(weight)
                if bias is not None:
                    layer.bias.copy_(bias)
        if spec.fixed_outer:
            self.layers[-1].requires_grad_(False)

    def forward(self, x: torch.Tensor, features: bool = False):
        """x (N, d_in) -> (N, d_out); with ``features``, also {"layer<k>": output of ReLU layer k (N, n_k)}."""
        h, kept = x, {}
        for i, layer in enumerate(self.layers):
            h = activate(self.spec, i, h, layer(h))  # (N, widths[i + 1])
            if features and self.spec.relu_after(i):
                kept[f"layer{i}"] = h
        return (h, kept) if features else h

    def wide(self, state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Every member of a stacked state {layers.<k>.weight: (R, n_k, n_{k-1}), ...} at once on
        its inputs x (R, B, d_in) -> (R, B, d_out): the same function of each member's state as
        ``forward``, without vmap (``functional.FuncEnsemble`` trains through it)."""
        h = x
        for k in range(len(self.layers)):
            h = activate(self.spec, k, h, stacked_linear(h, state, f"layers.{k}"))
        return h

    def matrices(self, state: dict[str, torch.Tensor]) -> list[tuple[str, torch.Tensor]]:
        """The measured matrices of stacked members: each layer's weight (R, n_k, n_{k-1})."""
        return [(f"layer{k}", state[f"layers.{k}.weight"]) for k in range(len(self.layers))]

    def weights(self) -> list[torch.Tensor]:
        """Every layer's weight matrix (out, in), first layer first."""
        return [layer.weight for layer in self.layers]


def build(spec: NetSpec, seed: int, device="cpu") -> Net:
    """A freshly initialized ``Net`` for ``spec`` on ``device``, deterministic in ``seed``
    (the same weights on every device)."""
    return Net(spec, seed, device)


def stacked_linear(h: torch.Tensor, state: dict, name: str) -> torch.Tensor:
    """R stacked Linear layers {name.weight: (R, out, in)[, name.bias: (R, out)]} on h (R, B, in) -> (R, B, out)."""
    out = torch.bmm(h, state[f"{name}.weight"].transpose(1, 2))
    return out + state[f"{name}.bias"][:, None] if f"{name}.bias" in state else out
