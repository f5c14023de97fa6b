"""Your own model in your own training loop, logged into a rankbias store and scored there.

    python examples/own_model.py --store own.sqlite          # trains 6 small CNNs (~1 min)
    rankbias compare examples/own_model.py --store own.sqlite --no-train

The script trains a plain PyTorch CNN on scikit-learn's 8x8 digits with AdamW at
three weight decays and two seeds, in an ordinary loop; a ``RankLogger`` attached
to the optimizer measures every matrix of the model (conv kernels reshaped to
(out, in k k)) at the matrix's log points and writes each run to the store.
``rankbias compare`` then scores the hypothesis below on those runs: the logged
runs are members of the scenario they name ("mine.cnn_adamw"), and their declared
config fields (wd, lr, seed, ...) are columns of ``runs.final``, as a matrix run's.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

from rankbias.hypotheses import Check, Trend
from rankbias.hypotheses.base import cell_means, spearman

SCENARIO = "mine.cnn_adamw"
WDS = (0.0, 0.3, 1.0)
LAYER = 1  # the second conv kernel, "2.weight" (16 x 16*3*3): the layers are named in each run's solver JSON


def _falls_with_wd(runs) -> list[Check]:
    f = runs.final[runs.final["status"] == "done"]
    means = cell_means(f, "wd", f[f"effective_rank@{LAYER}"])
    return [Check("rho(effective rank of conv 2, wd)", spearman(means.index, means.values), "<=", -0.9),
            Check("effect: effective rank at the largest / no wd", means.iloc[-1] / means.iloc[0])]


cnn_adamw = Trend(
    id="mine.cnn_adamw",
    paper="mine",
    scenarios=(SCENARIO,),
    predicts="AdamW's decoupled decay lowers the effective rank of a CNN's conv kernels",
    checks=_falls_with_wd,
)


def cnn() -> nn.Module:
    """(N, 64) digits -> 10 logits: two 3x3 conv layers of 16 channels, global average pooling."""
    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(16, 10))


def train(store: str, steps: int = 400, batch: int = 64, lr: float = 1e-2) -> list[str]:
    """Train and log one run per (wd, seed); returns the stored run names."""
    from sklearn.datasets import load_digits

    from rankbias.experiments.logger import RankLogger

    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float32)
    y = torch.tensor(digits.target)
    names = []
    for wd in WDS:
        for seed in (0, 1):
            torch.manual_seed(seed)
            model = cnn()
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
            config = {"optimizer": "adamw", "lr": lr, "wd": wd, "batch": batch, "seed": seed, "arch": "cnn16"}
            with RankLogger(model, store, scenario=SCENARIO, config=config, steps=steps, inputs=x[:512]) as logger:
                logger.attach(optimizer)
                order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
                for step in range(steps):
                    idx = order[(step * batch) % (len(x) - batch):][:batch]
                    optimizer.zero_grad()
                    nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
                    optimizer.step()  # the logger's hook measures the model at its log points
            names.append(logger.rec.name)
    return names


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="own.sqlite")
    parser.add_argument("--steps", type=int, default=400)
    args = parser.parse_args()
    for name in train(args.store, args.steps):
        print(name)
