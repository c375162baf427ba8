"""TensorBoard scalars of one training cell (`ablate train --tensorboard DIR`), written as it trains: each finished
epoch's curves (train/<curve>: softmax_loss, center_loss, train_accuracy, and pair_loss, annealing_weight or the
watched validation metric where the cell has them), then its metrics on validation (validation/<metric>) and on test
(test/<metric>) at its last epoch, and its options as text. Needs the
`tensorboard` package (torch.utils.tensorboard writes through it): `pip install -e '.[tensorboard]'`.

    scalars = EpochScalars(log_dir)
    record = run_cell(config, on_epoch=scalars.epoch)
    scalars.close()             # whatever the end: each finished epoch stays readable
    scalars.finish(record)      # the validation and test metrics, once the cell finished
"""

import json
import math

from ablate.metrics import computed_metrics
from ablate.runs.record import CURVES_OF_EPOCHS, validation_key


class EpochScalars:
    """A TensorBoard event file in `log_dir` (made if missing), one scalar per curve and epoch."""

    def __init__(self, log_dir):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ValueError(f"--tensorboard needs the tensorboard package ({exc}): pip install -e '.[tensorboard]'") \
                from None
        self.writer = SummaryWriter(str(log_dir))

    def epoch(self, epoch: int, history) -> None:
        """The last value of every curve `history` (ablate.train.loop.TrainingHistory) holds, at step `epoch`."""
        for curve in CURVES_OF_EPOCHS:
            values = getattr(history, curve.name)
            if values:
                self.writer.add_scalar(f"train/{curve.name}", values[-1], epoch)
        self.writer.flush()  # a live view: the epoch is on disk before the next one starts

    def close(self) -> None:
        self.writer.close()

    def finish(self, record: dict) -> None:
        """The cell's finite metrics on validation and test at its last trained epoch, its options as text, in the
        event file (a SummaryWriter reopens its file after close)."""
        step = len(record.get("curve_softmax_loss") or ()) or 1
        for metric in computed_metrics():
            for split, key in (("validation", validation_key(metric.name)), ("test", metric.name)):
                value = record.get(key)
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self.writer.add_scalar(f"{split}/{metric.name}", value, step)
        options = {key: record[key] for key in record if not key.startswith("curve_")}
        self.writer.add_text("record", "    " + json.dumps(options, indent=1, default=str).replace("\n", "\n    "))
        self.writer.close()
