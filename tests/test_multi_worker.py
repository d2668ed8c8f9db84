"""`train.strategy: multi_worker` for real: two worker processes on 127.0.0.1
(TF_CONFIG), on a CPU, train the tiny CNN in step; only the chief writes the
stage's outputs. A cluster that loses a worker after epoch 2 and is started again
resumes from its backups to the history of a run never interrupted. Every process
runs under a timeout, so a hung cluster fails the test instead of the suite."""
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbrands import paths
from carbrands.training import resume
from devtools.projects import env, project_params, write_params
from tests.helpers import backup_epoch, epoch_lines, kill_after_backup, write_tiny

TIMEOUT = 300  # seconds a worker may take (two epochs take ~20 s on a busy 2-core machine)
TINY_TRAIN = {"filters": [8, 16], "convs_per_block": 1, "dropout": [0.0, 0.1], "dense_units": 16,
              "epochs": 4, "batch_size": 16, "learning_rate": 0.01, "patience": 3, "reduce_lr_patience": 1,
              "strategy": "multi_worker"}


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _cluster(project: Path) -> list[subprocess.Popen]:
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        extra = {"TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-m", "stages.train"], cwd=project, env={**env(), **extra},
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return procs


def _wait(procs: list[subprocess.Popen]) -> list[tuple[int, str]]:
    results = []
    for proc in procs:
        try:
            out = proc.communicate(timeout=TIMEOUT)[0]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            pytest.fail(f"a worker ran past {TIMEOUT} s: {proc.communicate()[0][-3000:]}")
        results.append((proc.returncode, out))
    return results


def _project(root: Path) -> Path:
    write_tiny(root / paths.PREPARED, ["Alpha", "Beta", "Gamma"], {"train": 24, "val": 8, "test": 8})
    write_params(root, project_params({"train": TINY_TRAIN}))
    return root


def _epoch_lines(out: str) -> list[str]:
    """The per-epoch lines without the seconds at their end."""
    return [line.rsplit("  ", 1)[0] for line in epoch_lines(out)]


def _live(project: Path) -> dict[str, bytes]:
    live = project / paths.live_dir("train")
    return {f.relative_to(live).as_posix(): f.read_bytes() for f in sorted(live.rglob("*")) if f.is_file()}


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("multi_worker"))
    return project, _wait(_cluster(project))


@pytest.mark.slow  # two TensorFlow processes, ~30 s
def test_two_workers_train_in_step_and_only_the_chief_writes(two_workers):
    project, results = two_workers
    (chief_code, chief_out), (worker_code, worker_out) = results
    assert chief_code == 0 and worker_code == 0, (chief_out[-3000:], worker_out[-3000:])
    assert "2 replica(s)" in chief_out and "2 replica(s)" in worker_out
    # synchronous training: both saw the same loss, accuracy and learning rate every epoch
    assert _epoch_lines(chief_out) == _epoch_lines(worker_out) and len(_epoch_lines(chief_out)) >= 2
    for out in (paths.model("cnn"), paths.train_figure("cnn"), paths.train_metrics("cnn"),
                paths.live_dir("train") / "metrics.json"):
        assert (project / out).is_file(), out
    assert json.loads((project / paths.train_metrics("cnn")).read_text())["epochs_run"] == len(_epoch_lines(chief_out))
    assert not (project / resume.ROOT).exists()   # neither worker left a backup


@pytest.mark.slow  # two more two-worker runs, ~60 s
def test_a_cluster_that_lost_a_worker_resumes_from_its_backups(two_workers, tmp_path):
    reference, _ = two_workers
    project = _project(tmp_path)
    chief, worker = _cluster(project)
    try:
        kill_after_backup(worker, project / resume.ROOT / "train.worker1" / resume.FILE, 2, TIMEOUT)
        # the chief waits for the lost worker (or fails): stop it once it has its own backup of epoch 2
        deadline = time.monotonic() + TIMEOUT
        while chief.poll() is None and backup_epoch(project / resume.ROOT / "train" / resume.FILE) < 2:
            assert time.monotonic() < deadline, "the chief wrote no backup of epoch 2"
            time.sleep(0.1)
    finally:
        chief.send_signal(signal.SIGKILL)
        chief.wait(timeout=60)
        worker.kill()
    assert worker.returncode == -signal.SIGKILL
    assert (project / resume.ROOT / "train.worker1" / resume.FILE).is_file()

    results = _wait(_cluster(project))
    for code, out in results:
        assert code == 0, out[-3000:]
        assert "resume: continuing train from epoch 3" in out, out[-3000:]
        assert _epoch_lines(out)[0].startswith("epoch 3/")
    assert _live(project) == _live(reference)
    assert not (project / resume.ROOT).exists()
