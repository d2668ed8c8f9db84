import numpy as np
import pytest

from carbrands.progress import Progress, duration
from carbrands.training.compiling import balanced_class_weights
from tests.helpers import epoch_lines


def test_progress_line_says_count_rate_and_time_left(capsys):
    progress = Progress("features train", 200, every=0.0)
    progress.update(50)
    line = capsys.readouterr().out.strip()
    assert line.startswith("features train: 50/200 images (25 %), ") and "images/s, about" in line
    assert progress.line(10.0) == "features train: 50/200 images (25 %), 5.0 images/s, about 30 s left"
    assert duration(125) == "2 min 05 s"


def test_the_tests_tell_progress_within_an_epoch_from_its_end():
    """A loaded machine prints progress lines within an epoch ("epoch 4: ..."); the tests
    that read the per-epoch lines (tests/test_training.py checks their format) skip them."""
    within = Progress("epoch 4", 2, "batches").line(31.0)
    end = "epoch 4/4  loss 1.0986  accuracy 0.3333  val_loss 1.0986  val_accuracy 0.3333  lr 2.00e-04  3.1 s"
    assert epoch_lines(f"{within}\n{end}\n") == [end]


def test_progress_stays_quiet_within_its_interval(capsys):
    progress = Progress("audit", 10, "files", every=3600)
    progress.update(5)
    assert capsys.readouterr().out == ""


def test_balanced_class_weights_give_each_class_the_same_total():
    labels = np.array([0] * 90 + [1] * 10)
    weights = balanced_class_weights(labels, 2)
    assert weights == {0: 100 / (2 * 90), 1: 100 / (2 * 10)}
    assert weights[0] * 90 == weights[1] * 10
    assert balanced_class_weights(np.array([0, 1, 1, 0]), 2) is None   # balanced: unchanged training


def test_a_brand_absent_from_train_gets_no_weight_and_changes_no_other():
    weights = balanced_class_weights(np.array([0] * 6 + [2] * 2), 3)
    assert weights == pytest.approx({0: 8 / (3 * 6), 2: 8 / (3 * 2)}, rel=1e-15)
