"""Train one run of the galanti.wd setup (docs/claims.md) and save its state dict,
so that ``rankbias ranks`` has real weights to measure:

    python examples/train_mlp.py --wd 0.02 --out mlp.pt && rankbias ranks mlp.pt

The setup is the claim's, built from the package's own pieces: the bias-free
MLP 32-100-100-100-10 (``rankbias.engine.nets``), the 10-class Gaussian mixture with
N = 1000 and within-class std 1 (``rankbias.engine.data``, class means on the sphere
of radius sqrt(32)), SGD lr 0.1, batch 4, cross-entropy, PyTorch weight decay
``--wd``, ``--epochs`` epochs (``rankbias.engine.dynamics``), trained by the engine's
trainer (``rankbias.engine.ensemble``, here an ensemble of one) on ``--device``.  The
same run, stored with its spectra at every log point, is one cell of
``rankbias run``.
"""

import argparse

import torch

from rankbias.engine.data import gaussian_mixture
from rankbias.engine.device import choose
from rankbias.engine.dynamics import DynamicsSpec
from rankbias.engine.ensemble import train_ensemble
from rankbias.engine.nets import NetSpec


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wd", type=float, default=0.02, help="weight decay (PyTorch convention)")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0, help="the net's init and SGD's sampling")
    parser.add_argument("--out", default="mlp.pt")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    args = parser.parse_args()
    device, line = choose(args.device)
    print(line)
    data = gaussian_mixture(1000, 32, 10, 1.0, seed=0, test=200).to(device)
    dynamics = DynamicsSpec("sgd", "ce", lr=0.1, wd=args.wd, batch=4, epochs=args.epochs, seed=args.seed)
    final = {}
    result, = train_ensemble(NetSpec("deep_relu", (32, 100, 100, 100, 10)), data, [dynamics],
                             on_log=lambda at, ensemble, alive: final.update(ensemble=ensemble))
    torch.save(final["ensemble"].member(0).cpu().state_dict(), args.out)
    last = result.log[-1]
    print(f"saved {args.out}: {result.status} after {result.steps} steps, wd={args.wd}, "
          f"train accuracy {last['train_acc']:.3f}, test accuracy {last['test_acc']:.3f}")


if __name__ == "__main__":
    main()
