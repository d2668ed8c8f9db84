"""What a training stage (`train`, `transfer`, `optimizers@<run>`) trains within:
where it writes (the project for the chief, a temporary folder for the other
workers of a multi-worker run), its DVCLive log and its backup to resume from."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from carbrands import paths
from carbrands.training import cluster, resume
from carbrands.training.live import LiveLog


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

    def finish(self) -> None:
        """The stage has written its outputs: close DVCLive's log, remove the backup (and
        a worker's temporary outputs). A stage that fails never gets here: its backup
        stays to resume from."""
        self.live.close()
        self.backup.remove()
        if not cluster.is_chief():
            shutil.rmtree(self.root, ignore_errors=True)
