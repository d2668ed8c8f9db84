"""What a training stage (`train`, `transfer`, `optimizers@<run>`) trains within:
its inputs set up one way (seed, precision, prepared splits, strategy: `inputs`);
where it writes (the project for the chief, a temporary folder for the other
workers of a multi-worker run), its DVCLive log and its backup to resume from
(Session); and how it ends (Session.finish: its records written, the backup removed)."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from carbrands import paths, seeding
from carbrands.data import prepared
from carbrands.files import write_json
from carbrands.training import cluster, devices, resume
from carbrands.training.live import LiveLog


@dataclass
class Inputs:
    classes: list[str]
    meta: dict                # data/prepared/meta.json: image_size, resize, counts
    train: prepared.Split
    val: prepared.Split
    strategy: object          # a tf.distribute strategy: build and compile the model in its scope
    batch_size: int           # the global batch: the per-replica batch size x replicas

    @property
    def image_size(self) -> int:
        return self.meta["image_size"]


def inputs(seed: int, train_params: dict, batch_size: int) -> Inputs:
    """Seed everything, set the precision, load the prepared classes and train/val
    splits and make the distribution strategy, from params' `train` section (which
    the transfer and optimizer stages share for these keys)."""
    seeding.set_global_seed(seed, train_params["deterministic"])
    devices.set_mixed_precision(train_params["mixed_precision"])
    strategy = devices.strategy_from_params(train_params["strategy"])
    return Inputs(prepared.load_classes(paths.PREPARED), prepared.load_meta(paths.PREPARED),
                  prepared.load_split(paths.PREPARED, "train"), prepared.load_split(paths.PREPARED, "val"),
                  strategy, devices.global_batch_size(batch_size, strategy))


@dataclass
class Session:
    root: Path              # write every output under it (root / paths.model(...))
    live: LiveLog           # pass to fit: per-epoch metrics in root / paths.live_dir(stage)
    backup: resume.Backup   # pass to fit: the state after every epoch

    @classmethod
    def start(cls, stage: str, params: dict, inputs: list[str | Path]) -> Session:
        """The session of `stage` (a paths.live_dir name), its backup keyed by the params
        it reads and its input files (resume.fingerprint)."""
        root = Path(".") if cluster.is_chief() else Path(tempfile.mkdtemp(prefix=f"carbrands-{cluster.name()}-"))
        backup = resume.Backup(stage, resume.fingerprint(stage, params, inputs))
        return cls(root, LiveLog(root / paths.live_dir(stage)), backup)

    def finish(self, metrics_path: Path, metrics: dict, details_path: Path, details: dict) -> None:
        """The stage has written its model: write its headline metrics, its details and
        beside the metrics the machine record (where it ran), close DVCLive's log,
        remove the backup (and a worker's temporary outputs). A stage that fails never
        gets here: its backup stays to resume from."""
        write_json(self.root / metrics_path, metrics)
        write_json(self.root / details_path, details)
        write_json(self.root / paths.machine_record(metrics_path), devices.machine_record())
        self.live.close()
        self.backup.remove()
        if not cluster.is_chief():
            shutil.rmtree(self.root, ignore_errors=True)
