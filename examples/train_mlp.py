"""Train the bias-free MLP 32-100-100-100-10 of the galanti.wd setup (docs/claims.md) and
save its state dict, so that ``rankbias ranks`` has real weights to measure.

    python examples/train_mlp.py --wd 0.02 --out mlp.pt && rankbias ranks mlp.pt

Setup (fixed): 10-class Gaussian mixture in R^32, N = 1000, class means on the
unit sphere scaled by 3, within-class std 1; SGD lr 0.1, batch 4, cross-entropy,
PyTorch weight decay ``--wd``, ``--epochs`` epochs.  A stand-in until the
experiment matrix (``rankbias run``) exists.
"""

import argparse

import torch
from torch import nn


def mixture(n: int, d: int, classes: int, generator: torch.Generator):
    means = torch.randn(classes, d, generator=generator)
    means = 3 * means / means.norm(dim=1, keepdim=True)
    y = torch.randint(classes, (n,), generator=generator)
    return means[y] + torch.randn(n, d, generator=generator), y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wd", type=float, default=0.02, help="weight decay (PyTorch convention)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="mlp.pt")
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    x, y = mixture(1000, 32, 10, g)
    widths = [32, 100, 100, 100, 10]
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b, bias=False))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    model = nn.Sequential(*layers)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, weight_decay=args.wd)
    for epoch in range(args.epochs):
        for idx in torch.randperm(len(x), generator=g).split(4):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    torch.save(model.state_dict(), args.out)
    print(f"saved {args.out}: wd={args.wd} epochs={args.epochs} train accuracy={acc:.3f}")


if __name__ == "__main__":
    main()
