"""Long runs you can watch and resume: the `train` stage logs every epoch through
DVCLive while it runs, and a run killed after an epoch (SIGKILL, no clean-up) and
started again continues from its backup to the same history and the same model as
a run never interrupted. A stale or unreadable backup is discarded with one line."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from carbrands import paths
from carbrands.history import metrics_folder, read_history
from carbrands.training import resume
from devtools.projects import env, project_params, write_params
from tests.helpers import epoch_lines, kill_after_backup, write_tiny

EPOCHS = 6
# a tiny CNN; learning-rate reduction and early stopping both hold state across epochs
TINY_TRAIN = {"filters": [8, 16], "convs_per_block": 1, "dropout": [0.0, 0.1], "dense_units": 16,
              "head_dropout": 0.2, "epochs": EPOCHS, "batch_size": 16, "learning_rate": 0.01,
              "patience": 4, "reduce_lr_patience": 1}


def _project(root: Path) -> Path:
    write_tiny(root / paths.PREPARED, ["Alpha", "Beta", "Gamma"], {"train": 24, "val": 8, "test": 8})
    write_params(root, project_params({"train": TINY_TRAIN}))
    return root


def _start(module: str, project: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", module], cwd=project, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _train(project: Path) -> subprocess.Popen:
    return _start("stages.train", project)


def _rows(project: Path) -> int:
    f = metrics_folder(project / paths.live_dir("train")) / "val_loss.tsv"
    return len(f.read_text().splitlines()) - 1 if f.exists() else 0


def _live_files(project: Path) -> dict[str, bytes]:
    live = project / paths.live_dir("train")
    return {f.relative_to(live).as_posix(): f.read_bytes() for f in sorted(live.rglob("*")) if f.is_file()}


def _weights(project: Path) -> list[np.ndarray]:
    import keras
    return keras.models.load_model(project / paths.model("cnn")).get_weights()


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """A tiny train run never interrupted, watched while it runs: (project, [rows of
    DVCLive's val_loss series seen while the stage was still running], its output)."""
    project = _project(tmp_path_factory.mktemp("uninterrupted"))
    proc, seen = _train(project), []
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        n = _rows(project)
        if proc.poll() is None and (not seen or n != seen[-1]):
            seen.append(n)
        time.sleep(0.02)
    out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, out
    return project, seen, out


@pytest.mark.slow  # a tiny training run, ~15 s
def test_live_metrics_grow_while_training(uninterrupted):
    project, seen, out = uninterrupted
    # the per-epoch series existed and grew before the stage ended
    assert len([n for n in seen if 0 < n < EPOCHS]) >= 2, (seen, out)
    history = read_history(project / paths.live_dir("train"))
    assert history["epoch"].tolist() == list(range(1, len(history) + 1)) and len(history) == _rows(project)
    assert list(history.columns[:6]) == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"]
    assert (project / paths.live_dir("train") / "metrics.json").is_file()
    assert not (project / paths.live_dir("train") / "dvc.yaml").exists()   # DVCLive writes no pipeline file
    assert not (project / resume.ROOT).exists()                              # the backup is gone when done


@pytest.mark.slow  # two more tiny training runs, ~30 s
def test_killed_after_epoch_2_resumes_to_the_same_history_and_model(uninterrupted, tmp_path):
    reference, _, _ = uninterrupted
    project = _project(tmp_path)
    killed = _train(project)
    out = kill_after_backup(killed, project / resume.ROOT / "train" / resume.FILE, 2)
    assert killed.returncode == -signal.SIGKILL, out
    assert _rows(project) == 2

    again = _train(project)
    out = again.communicate(timeout=300)[0]
    assert again.returncode == 0, out
    assert [line for line in out.splitlines() if line.startswith("resume:")] == [
        "resume: continuing train from epoch 3 (backup taken after epoch 2 in .resume/train/backup.npz)"]
    assert [line.split()[1] for line in epoch_lines(out)][0] == f"3/{EPOCHS}"
    assert _live_files(project) == _live_files(reference)   # byte for byte
    for a, b in zip(_weights(project), _weights(reference), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not (project / resume.ROOT).exists()


def _saved(tmp_path, fingerprint="a") -> resume.Backup:
    backup = resume.Backup("train", fingerprint, root=tmp_path)
    backup.save("fit", {"epoch": 2, "stopped": False, "rows": [{"epoch": 1}, {"epoch": 2}]},
                {"model": [np.arange(3.0)], "optimizer": [np.zeros(2)], "best": None})
    return backup


def test_a_backup_is_resumed_only_with_the_same_fingerprint(tmp_path, capsys):
    _saved(tmp_path)
    same = resume.Backup("train", "a", root=tmp_path)
    assert same.point("fit")["epoch"] == 2 and same.point("other") is None
    np.testing.assert_array_equal(same.arrays_of("model")[0], np.arange(3.0))
    assert same.arrays_of("best") is None
    assert capsys.readouterr().out == ""

    other = resume.Backup("train", "b", root=tmp_path)
    assert other.state is None and other.point("fit") is None
    assert capsys.readouterr().out.splitlines() == [
        f"resume: discarding the backup in {tmp_path / 'train'}: it was made with other params, data or code; "
        "training from the start"]
    assert not (tmp_path / "train").exists()


def test_a_truncated_backup_is_discarded_with_one_line(tmp_path, capsys):
    backup = _saved(tmp_path)
    data = backup.file.read_bytes()
    backup.file.write_bytes(data[: len(data) // 2])
    assert resume.Backup("train", "a", root=tmp_path).state is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and "it cannot be read" in lines[0] and lines[0].startswith("resume: discarding")
    assert not (tmp_path / "train").exists()


def test_the_fingerprint_follows_params_and_input_files(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.npy").write_bytes(b"12")
    first = resume.fingerprint("train", {"seed": 1}, [data])
    assert resume.fingerprint("train", {"seed": 1}, [data]) == first
    assert resume.fingerprint("train", {"seed": 2}, [data]) != first
    assert resume.fingerprint("transfer", {"seed": 1}, [data]) != first
    (data / "a.npy").write_bytes(b"123")
    assert resume.fingerprint("train", {"seed": 1}, [data]) != first


def test_the_backup_is_written_atomically(tmp_path, monkeypatch):
    """A kill while a backup is written leaves the previous one whole: it is written
    under a temporary name and renamed."""
    backup = _saved(tmp_path)
    before = backup.file.read_bytes()

    def crash(src, dst):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        backup.save("fit", {"epoch": 3, "stopped": False, "rows": []}, {"model": [np.ones(3)]})
    assert backup.file.read_bytes() == before


def _run(module: str, project: Path) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", module], cwd=project, env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    return proc.returncode, proc.stdout


@pytest.mark.slow  # three tiny two-phase transfer runs, ~60 s
def test_transfer_killed_in_fine_tuning_resumes_fine_tuning(tmp_path):
    """Head 2 epochs, fine-tuning 2: killed after epoch 3 (the first of fine-tuning), the
    rerun trains neither the head again nor fine-tuning from its start, and ends where
    the uninterrupted run ends, interpolated back towards the same starting weights
    (from a weights file, as pretrained ones: the stage interpolates only those)."""
    import keras

    from carbrands.models.backbones import backbone_spec
    start = tmp_path / "start.weights.h5"
    keras.utils.set_random_seed(0)
    backbone_spec("efficientnet_lite0").constructor(include_top=False, weights=None).save_weights(start)
    tiny = {"weights": str(start), "dense_units": 16, "batch_size": 16,
            "head": {"epochs": 2, "patience": 5}, "fine_tune": {"epochs": 2, "patience": 5, "interpolate": 0.5}}
    reference, project = tmp_path / "uninterrupted", tmp_path / "killed"
    write_tiny(reference / paths.PREPARED, ["Alpha", "Beta", "Gamma"], {"train": 24, "val": 8, "test": 8})
    write_params(reference, project_params({"transfer": tiny}))
    assert _run("stages.pretrained", reference)[0] == 0
    shutil.copytree(reference, project)   # the same data and weights: `pretrained` once
    projects = [reference, project]
    assert _run("stages.transfer", reference)[0] == 0

    killed = _start("stages.transfer", project)
    out = kill_after_backup(killed, project / resume.ROOT / "transfer" / resume.FILE, 3)
    assert killed.returncode == -signal.SIGKILL, out
    code, out = _run("stages.transfer", project)
    assert code == 0, out
    assert [line for line in out.splitlines() if line.startswith("resume:")] == [
        "resume: continuing transfer fine_tune from epoch 4 (backup taken after epoch 3 in "
        ".resume/transfer/backup.npz)"]
    assert [line.split()[1] for line in epoch_lines(out)] == ["4/4"]

    live = {p: {f.relative_to(p).as_posix(): f.read_bytes() for f in sorted((p / paths.live_dir("transfer")).rglob("*"))
                if f.is_file()} for p in projects}
    assert live[project] == live[reference]
    assert read_history(project / paths.live_dir("transfer"))["phase"].tolist() == ["head"] * 2 + ["fine_tune"] * 2
    details = json.loads((project / paths.train_details("transfer")).read_text())
    assert details["fine_tune_interpolate"] == 0.5 and details["weights_route"] == "file"
    for a, b in zip(*(keras.models.load_model(p / paths.model("transfer")).get_weights() for p in projects),
                    strict=True):
        np.testing.assert_array_equal(a, b)
