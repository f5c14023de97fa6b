"""A Lightning ``Callback`` that logs a ``LightningModule`` into a rankbias store
(``logger.RankLogger``); importable where Lightning is installed
(``pip install rankbias[lightning]``).

    trainer = lightning.Trainer(max_steps=2000, callbacks=[RankCallback("runs.sqlite",
                                scenario="mine.cnn", config={"lr": 0.1, "wd": 5e-4, "seed": 0})])

It measures at the log points of a run of ``trainer.max_steps`` optimizer steps
(``trainer.global_step``; or every ``log_every``), with the mini-batch loss the
module's ``training_step`` returned as ``batch_loss``, and writes the run when
fitting ends (status "failed", with the error, if it raised).
"""

from __future__ import annotations

try:
    import lightning.pytorch as pl
except ImportError:  # the older distribution's name, or none
    try:
        import pytorch_lightning as pl
    except ImportError:
        pl = None

from rankbias.experiments.logger import RankLogger


class RankCallback(pl.Callback if pl is not None else object):
    """Log spectra and ranks of the module being fit (module docstring); the keyword
    arguments are ``RankLogger``'s."""

    def __init__(self, store="rankbias.sqlite", *, scenario: str = "mine.model", config: dict | None = None,
                 log_points: int = 20, log_every: int | None = None, inputs=None):
        if pl is None:
            raise ImportError("RankCallback needs Lightning: pip install rankbias[lightning] (or lightning). "
                              "Without it, use RankLogger in your loop.")
        self.options = dict(store=store, scenario=scenario, config=config, log_points=log_points,
                            log_every=log_every, inputs=inputs)
        self.logger: RankLogger | None = None
        self.name: str | None = None

    def on_fit_start(self, trainer, pl_module) -> None:
        steps = trainer.max_steps if self.options["log_every"] is None else None
        if steps is not None and steps < 1:
            raise ValueError("RankCallback logs at the log points of trainer.max_steps; set max_steps on the "
                             "Trainer, or pass log_every to RankCallback.")
        self.logger = RankLogger(pl_module, steps=steps, **self.options)
        self.logger(0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        values = {"batch_loss": float(loss)} if loss is not None else {}
        self.logger(trainer.global_step, **values)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.name = self.logger.finish()

    def on_exception(self, trainer, pl_module, exception) -> None:
        if self.logger is not None and self.name is None:
            self.name = self.logger.finish("failed", f"{type(exception).__name__}: {exception}")
