"""The host's side of an ensemble's training: which members still train, their results,
and their first non-finite loss, read from the device only at log points, gate checks and
every ``CHECK_EVERY`` steps (``rankbias.engine.ensemble.train_ensemble``)."""

from __future__ import annotations

import numpy as np
import torch

from rankbias.engine.dynamics import DynamicsSpec, RunResult

CHECK_EVERY = 256  # steps between reads of the members' divergence flags


class Members:
    """Which members still train, and each one's ``RunResult``: the host's side of
    ``train_ensemble``.  The losses of the steps since the last read are kept on the
    device, one row per step (a copy, no test per step), and searched for each
    member's first non-finite loss only by ``read_divergence``."""

    def __init__(self, members: list[DynamicsSpec], lr: torch.Tensor, rates: np.ndarray, decays: np.ndarray, device):
        self.members, self.lr, self.rates, self.decays = members, lr, rates, decays
        self.alive = list(range(len(members)))  # on the host: no device read per step
        self.results = [RunResult("done", 0, 0.0) for _ in members]
        self.first_bad = torch.full((len(members),), -1, dtype=torch.long, device=device)
        self.recent: torch.Tensor | None = None  # (CHECK_EVERY, R): the losses of steps since, since + 1, ...
        self.since, self.pending = 0, 0
        self.smallest_decay = self._decay()

    def _decay(self) -> float:
        """min_r |1 - lr_r wd_r|, rounded as the device's float32 computes it: |s_k| shrinks
        by at most this factor per step (a member with lr wd > 1 flips its sign)."""
        return float(np.min(np.abs(np.float32(1) - self.rates * self.decays)))

    def note_losses(self, step: int, losses: torch.Tensor, rows: torch.Tensor) -> None:
        """Keep the losses (R',) of step ``step`` of the members ``rows`` (R',) that stepped."""
        R = len(self.members)
        if self.recent is None:
            self.recent = torch.full((CHECK_EVERY, R), 0.0, dtype=losses.dtype, device=losses.device)
        if self.pending == CHECK_EVERY:
            self._fold()
        if self.pending == 0:
            self.since = step
        row = self.recent.select(0, self.pending)
        row.copy_(losses) if rows.shape[0] == R else row.index_copy_(0, rows, losses)  # the others' stay finite
        self.pending += 1

    def _fold(self) -> None:
        """Note each member's first non-finite loss among the kept steps in ``first_bad``, on the device."""
        if self.pending:
            bad = ~torch.isfinite(self.recent[: self.pending])  # (steps, R)
            first = torch.where(bad.any(0), bad.to(torch.uint8).argmax(0) + self.since, -1)  # argmax: the first
            self.first_bad.copy_(torch.where(self.first_bad < 0, first, self.first_bad))
            self.recent[: self.pending].zero_()
            self.pending = 0

    def read_divergence(self) -> None:
        """Freeze every member whose loss has turned non-finite, at the step it did."""
        self._fold()
        for r, step in enumerate(self.first_bad.tolist()):
            if step >= 0 and r in self.alive:
                self.freeze(r, step)

    def freeze(self, r: int, step: int) -> None:
        """Member r diverged at ``step``: it stops there, and its lr becomes 0."""
        self.results[r].status, self.results[r].diverged_at = "diverged", step
        self.stop(r, step)

    def stop(self, r: int, step: int) -> None:
        """Member r stops at ``step`` (end of budget, gate, divergence): its weights stay as they are."""
        member = self.members[r]
        self.results[r].steps, self.results[r].horizon = step, member.lr * member.wd * step
        self.alive.remove(r)
        self.lr[r] = 0.0
        self.rates[r] = 0.0
        self.smallest_decay = self._decay()
