"""The module architectures of the matrix, trained through torch.func (``functional``).

Each is an ``nn.Module`` with ``forward(x, features=False)`` (features: the
outputs of its ReLU layers, or of its attention layer, by name) and
``matrices(state)``, the matrices measured at log points from stacked
parameters {name: (R, ...)}, in a fixed order (a run's layer index is its
position there; ``RunRecord.solver["layers"]`` names them):

- ``conv``: blocks Conv(c_{i-1} -> c_i, kernel, padding) [-> BatchNorm (affine)] -> ReLU
  (``residual``: h <- h + block(h) where the channels agree), global average pooling,
  a linear head.  Conv1d on signals (1, L), Conv2d on images (C, H, W): the data set's
  ``shape``.  Measured: each kernel reshaped to (out, in k [k]) (Galanti et al.'s
  convention), then the head.
- ``bn_mlp``: hidden layers Linear -> BatchNorm1d (affine) -> ReLU, then a Linear.
- ``factorized``: x -> W_D ... W_1 x, measured as its factors and the end-to-end
  product W_D ... W_1 (last, named ``product``): a deep linear factorization of one
  map (D = 2: A B^T).
- ``attention``: a one-layer attention-only transformer over token sequences (N, L):
  h = E[x] + P, h <- h + sum_h softmax(q_h k_h^T / sqrt(d_head)) v_h W_O^h with
  q_h = h W_Q^h (and k, v alike; no mask), logits = U h[readout] (Vaswani et al. 2017,
  without MLP or LayerNorm).  Measured: per head W_Q^h W_K^h^T and W_V^h W_O^h
  (d_model x d_model), then E and U.  Computed as its circuits (Elhage et al. 2021,
  "A Mathematical Framework for Transformer Circuits"): the same logits, formed at
  the readout position only, with every residual-stream vector a sum of rows of the
  slot basis Z = [E; P] ((vocab + L) x d_model), so that a score is a lookup in the
  QK table Z W_Q^h W_K^h^T Z^T and a head's output a sum of rows of Z W_V^h W_O^h.
  No (N, L, d_model) tensor is formed: a full-batch step of 15 members (N = 2000,
  one thread) took 47 ms against 453 ms for the layer formed at the readout from
  the full keys and values (measured); tests/test_v3_engine.py holds the logits
  equal to the layer over every position.

Each also has ``wide(state, x)`` (as the MLP archs' ``nets.Net`` has): all R members in one
pass, the same function of each member's state as ``forward`` without vmap;
``functional.FuncEnsemble`` trains them through it.  Conv and BatchNorm nets fold the
members into the channels (a grouped convolution with groups = R, a batched matmul,
one BatchNorm over R C channels; under vmap, torch's BatchNorm made a digits-CNN step
1.9x slower).  The attention net batches its circuits over a leading member axis and
reads the slots out through the unembedding (Z U^T, Z W_V^h W_O^h U^T: the full OV
circuit, outputs wide instead of d_model): a full-batch step of 15 members (N = 2000,
one thread) took 31-33 ms against 54-57 ms under vmap (measured).

Init: weights and biases U(-b, b), b = init_scale / sqrt(fan_in) (PyTorch's
default for Linear and Conv; fan_in = in k [k]; W_O's fan_in is heads d_head),
BatchNorm weight 1 and bias 0, embeddings N(0, 1); with ``init_std`` set, every
other weight N(0, init_std^2) instead.  Drawn in parameter order from one CPU
generator seeded by the run's seed, the same on every device.  The MLP archs keep ``nets.Net`` and its ``nets.init_params``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from rankbias.engine.nets import MLP_ARCHS, Net, NetSpec, stacked_linear


class _EvalByHand:
    """BatchNorm whose eval mode is spelled out, (x - mean) / sqrt(var + eps) w + b per channel
    with the running statistics, as torch's kernel computes it: under vmap, torch's own eval
    kernel with per-member statistics ran 15x slower than a loop over members (measured,
    64 members x (256, 32, 8, 8)).  Train mode is torch's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.track_running_stats:
            return super().forward(x)
        shape = (-1,) + (1,) * (x.dim() - 2)  # per channel, broadcast over positions
        out = (x - self.running_mean.view(shape)) / torch.sqrt(self.running_var.view(shape) + self.eps)
        return out * self.weight.view(shape) + self.bias.view(shape) if self.affine else out


class BatchNorm1d(_EvalByHand, nn.BatchNorm1d):
    pass


class BatchNorm2d(_EvalByHand, nn.BatchNorm2d):
    pass


def _folded_norm(norm: nn.Module, state: dict, name: str, z: torch.Tensor) -> torch.Tensor:
    """BatchNorm ``norm`` (its mode, momentum and eps) of R members at once: z (B, R C, ...) with
    the members' stacked statistics and affine parameters {name.*: (R, C)} read as R C channels;
    in train mode the running statistics are updated in place, as each member's module does."""
    got = {k: state[f"{name}.{k}"] for k in ("running_mean", "running_var", "weight", "bias") if f"{name}.{k}" in state}
    if norm.training:
        state[f"{name}.num_batches_tracked"].add_(1)
    return F.batch_norm(z, got["running_mean"].view(-1), got["running_var"].view(-1),
                        got["weight"].view(-1) if "weight" in got else None, got["bias"].view(-1) if "bias" in got else None,
                        norm.training, norm.momentum, norm.eps)


def _conv(dims: int):
    return {1: nn.Conv1d, 2: nn.Conv2d}[dims], {1: BatchNorm1d, 2: BatchNorm2d}[dims]


class ConvNet(nn.Module):
    """``conv`` on inputs x (N, prod(shape)), viewed as (N, *shape)."""

    def __init__(self, spec: NetSpec, shape: tuple[int, ...]):
        super().__init__()
        self.spec, self.shape = spec, tuple(shape)
        conv, norm = _conv(len(shape) - 1)
        k = spec.kernel or 3
        pad = spec.padding if spec.padding is not None else k // 2
        chans = spec.widths[:-1]
        self.convs = nn.ModuleList(conv(a, b, k, padding=pad, bias=spec.bias) for a, b in zip(chans[:-1], chans[1:]))
        self.norms = nn.ModuleList(norm(b) for b in chans[1:]) if spec.batchnorm else None
        self.head = nn.Linear(chans[-1], spec.widths[-1], bias=spec.bias)

    def forward(self, x: torch.Tensor, features: bool = False):
        h, kept = x.reshape(-1, *self.shape), {}  # (N, C, [H,] W)
        for i, conv in enumerate(self.convs):
            z = conv(h)  # (N, c_i, [H,] W)
            if self.norms is not None:
                z = self.norms[i](z)
            a = torch.relu(z)
            h = h + a if self.spec.residual and a.shape == h.shape else a
            if features:
                kept[f"conv{i}"] = h
        out = self.head(h.flatten(2).mean(-1))  # global average pooling: (N, c_k) -> (N, classes)
        return (out, kept) if features else out

    def wide(self, state: dict, x: torch.Tensor) -> torch.Tensor:
        """Every member at once (module docstring): x (R, B, prod(shape)) -> (R, B, classes)."""
        R, B = x.shape[:2]
        conv = {2: F.conv1d, 3: F.conv2d}[len(self.shape)]
        layout = torch.channels_last if len(self.shape) == 3 else torch.contiguous_format  # mkldnn's fast one
        h = x.reshape(R, B, *self.shape).transpose(0, 1).reshape(B, R * self.shape[0], *self.shape[1:])  # (B, R C, ..)
        h = h.contiguous(memory_format=layout)
        for i, module in enumerate(self.convs):
            weight = state[f"convs.{i}.weight"].flatten(0, 1).contiguous(memory_format=layout)  # (R out, in, k[, k])
            bias = state[f"convs.{i}.bias"].flatten() if f"convs.{i}.bias" in state else None
            z = conv(h, weight, bias, padding=module.padding, groups=R)  # (B, R c_i, [H,] W)
            if self.norms is not None:
                z = _folded_norm(self.norms[i], state, f"norms.{i}", z)
            a = torch.relu(z)
            h = h + a if self.spec.residual and a.shape == h.shape else a
        pooled = h.flatten(2).mean(-1).view(B, R, -1).transpose(0, 1)  # (R, B, c_k): global average pooling
        return stacked_linear(pooled, state, "head")

    def matrices(self, state):
        kernels = [(f"conv{i}", state[f"convs.{i}.weight"].flatten(2)) for i in range(len(self.convs))]  # (R, out, in k k)
        return kernels + [("head", state["head.weight"])]


class BatchNormMLP(nn.Module):
    """``bn_mlp``: x (N, d_in) -> (N, d_out)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        w = spec.widths
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=spec.bias) for a, b in zip(w[:-1], w[1:]))
        self.norms = nn.ModuleList(BatchNorm1d(b) for b in w[1:-1])

    def forward(self, x: torch.Tensor, features: bool = False):
        h, kept = x, {}
        for i, norm in enumerate(self.norms):
            h = torch.relu(norm(self.layers[i](h)))  # (N, n_i)
            kept[f"layer{i}"] = h
        out = self.layers[-1](h)
        return (out, kept) if features else out

    def wide(self, state: dict, x: torch.Tensor) -> torch.Tensor:
        """Every member at once (module docstring): x (R, B, d_in) -> (R, B, d_out)."""
        R, B = x.shape[:2]
        h = x
        for i, norm in enumerate(self.norms):
            z = stacked_linear(h, state, f"layers.{i}").transpose(0, 1).reshape(B, -1)  # (B, R n_i)
            h = torch.relu(_folded_norm(norm, state, f"norms.{i}", z)).view(B, R, -1).transpose(0, 1)  # (R, B, n_i)
        return stacked_linear(h, state, f"layers.{len(self.norms)}")

    def matrices(self, state):
        return [(f"layer{k}", state[f"layers.{k}.weight"]) for k in range(len(self.layers))]


class Factorized(nn.Module):
    """``factorized``: x (N, d_in) -> W_D ... W_1 x (N, d_out)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        w = spec.widths
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=spec.bias) for a, b in zip(w[:-1], w[1:]))

    def forward(self, x: torch.Tensor, features: bool = False):
        h = x
        for layer in self.layers:
            h = layer(h)
        return (h, {}) if features else h

    def wide(self, state: dict, x: torch.Tensor) -> torch.Tensor:
        """Every member at once: x (R, B, d_in) -> (R, B, d_out), W_D ... W_1 x per member."""
        h = x
        for k in range(len(self.layers)):
            h = stacked_linear(h, state, f"layers.{k}")
        return h

    def matrices(self, state):
        factors = [state[f"layers.{k}.weight"] for k in range(len(self.layers))]  # (R, n_k, n_{k-1})
        product = factors[0]
        for w in factors[1:]:
            product = w @ product  # (R, n_k, d_in)
        return [(f"layer{k}", w) for k, w in enumerate(factors)] + [("product", product)]


class Attention(nn.Module):
    """``attention``: token ids x (N, L) (stored as floats) -> logits (N, outputs)."""

    def __init__(self, spec: NetSpec):
        super().__init__()
        length, d, outputs = spec.widths
        H, e = spec.heads, spec.d_head
        self.spec, self.readout = spec, spec.readout or 0
        self.embed = nn.Parameter(torch.empty(spec.vocab, d))
        self.position = nn.Parameter(torch.empty(length, d))
        self.query, self.key, self.value = (nn.Parameter(torch.empty(H, d, e)) for _ in range(3))
        self.out = nn.Parameter(torch.empty(H, e, d))
        self.unembed = nn.Linear(d, outputs, bias=spec.bias)

    def forward(self, x: torch.Tensor, features: bool = False):
        weights = {n: getattr(self, n)[None] for n in ("embed", "position", "query", "key", "value", "out")}
        read = self._read(weights, x[None])[0]  # (N, d)
        out = self.unembed(read)
        return (out, {"attention": read}) if features else out

    def wide(self, state: dict, x: torch.Tensor) -> torch.Tensor:
        """Every member at once: x (R, N, L) -> logits (R, N, outputs), the circuits of
        ``_read`` batched over the members without vmap, read out through the unembedding
        (Z U^T and Z W_V W_O U^T: the full OV circuit, outputs wide rather than d_model)."""
        out = self._read(state, x, state["unembed.weight"].transpose(1, 2))
        return out + state["unembed.bias"][:, None] if "unembed.bias" in state else out

    def _read(self, p: dict, x: torch.Tensor, through: torch.Tensor | None = None) -> torch.Tensor:
        """The residual stream at the readout of R members {embed: (R, V, d), position: (R, L, d),
        query, key, value: (R, H, d, e), out: (R, H, e, d)} on token ids x (R, N, L) -> (R, N, d),
        computed as its circuits (module docstring); with ``through`` (R, d, k), that stream
        times ``through`` (R, N, k), formed from the slots' images under it."""
        V, L, r = self.spec.vocab, p["position"].shape[1], self.readout
        ids = x.long().transpose(1, 2)  # (R, L, N) token ids, position-major: softmax runs over a strided dim
        (R, _, N), H = ids.shape, p["query"].shape[1]
        Z = torch.cat([p["embed"], p["position"]], 1)  # (R, V + L, d): h_l = Z[x_l] + Z[V + l]
        slots = Z[:, None]  # (R, 1, V + L, d), against the heads
        qk = slots @ (p["query"] @ p["key"].transpose(-1, -2)) @ slots.transpose(-1, -2) / math.sqrt(self.spec.d_head)
        query = qk[:, :, :V] + qk[:, :, V + r, None]  # (R, H, b, V+L): the query h_r of a sequence with x_r = b
        table = query[..., None, :V] + query[..., V:, None]  # (R, H, b, l, a): its score of key h_l, x_l = a
        cell = (ids[:, r, None] * L + torch.arange(L, device=x.device)[:, None]) * V + ids  # (R, L, N): flat (b, l, a)
        scores = torch.gather(table.flatten(2), 2, cell.flatten(1)[:, None].expand(R, H, L * N))
        att = torch.softmax(scores.view(R, H, L, N), 2)
        # (R, H, V, N): the attention a head puts on each token value, summed over the positions holding it
        mass = torch.zeros(R, H, V, N, dtype=att.dtype, device=x.device).scatter_add(2, ids[:, None].expand(R, H, L, N), att)
        ov = slots @ (p["value"] @ p["out"])  # (R, H, V+L, d): a slot's output through head h
        if through is not None:
            Z, ov = Z @ through, ov @ through[:, None]  # the slots' images, (R, V+L, k) and (R, H, V+L, k)
        own = torch.gather(Z, 1, ids[:, r, :, None].expand(R, N, Z.shape[-1])) + Z[:, V + r, None]  # (R, N, d): h_r
        return (own + mass.flatten(1, 2).transpose(1, 2) @ ov[:, :, :V].flatten(1, 2)  # (R, N, d): h_r + heads
                + att.flatten(1, 2).transpose(1, 2) @ ov[:, :, V:].flatten(1, 2))

    def matrices(self, state):
        q, k, v, o = (state[n] for n in ("query", "key", "value", "out"))  # (R, H, d, e), W_O (R, H, e, d)
        qk = q @ k.transpose(-1, -2)  # (R, H, d, d)
        vo = v @ o
        heads = range(q.shape[1])
        return ([(f"qk{h}", qk[:, h]) for h in heads] + [(f"vo{h}", vo[:, h]) for h in heads]
                + [("embed", state["embed"]), ("unembed", state["unembed.weight"])])

    @staticmethod
    def imbalance(state) -> torch.Tensor:
        """||W_Q^h^T W_Q^h - W_K^h^T W_K^h||_F per member and head, (R, H)."""
        q, k = state["query"], state["key"]  # (R, H, d, e)
        return (q.transpose(-1, -2) @ q - k.transpose(-1, -2) @ k).flatten(2).norm(dim=-1)


def _fan_in(name: str, p: torch.Tensor) -> int:
    """The fan-in of weight ``p`` named ``name`` (its last dotted part)."""
    if name == "out":  # W_O maps the heads' concatenation, heads d_head wide
        return p.shape[0] * p.shape[1]
    if name in ("query", "key", "value"):
        return p.shape[1]
    return math.prod(p.shape[1:])  # Linear (out, in), Conv (out, in, k [, k])


def _init(model: nn.Module, spec: NetSpec, seed: int) -> None:
    """The module docstring's init, in parameter order, from one generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    weights = {n for n, _ in model.named_parameters() if not n.endswith("bias")}
    with torch.no_grad():
        for name, p in model.named_parameters():
            owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if isinstance(owner, nn.modules.batchnorm._BatchNorm):
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif name in ("embed", "position"):
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype))
            elif spec.init_std is not None and name in weights:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=p.dtype) * spec.init_std)
            else:  # a bias takes its weight's fan-in
                weight = name.removesuffix("bias") + "weight" if name.endswith("bias") else name
                fan = _fan_in(weight.rsplit(".", 1)[-1], model.get_parameter(weight))
                bound = (spec.init_scale if name in weights else 1.0) / math.sqrt(fan)
                p.copy_((2 * torch.rand(p.shape, generator=generator, dtype=p.dtype) - 1) * bound)


def build_model(spec: NetSpec, seed: int, shape: tuple[int, ...] | None = None, device="cpu") -> nn.Module:
    """A freshly initialized model of ``spec`` (deterministic in ``seed``) on ``device``;
    ``shape`` is the data set's input shape, which ``conv`` needs."""
    if spec.arch in MLP_ARCHS:
        return Net(spec, seed, device)
    if spec.arch == "conv":
        model = ConvNet(spec, shape)
    else:
        model = {"bn_mlp": BatchNormMLP, "factorized": Factorized, "attention": Attention}[spec.arch](spec)
    _init(model, spec, seed)
    return model.to(device)
