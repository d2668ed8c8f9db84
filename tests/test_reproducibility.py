"""Reproducibility made visible and determinism as a choice: the machine record each
training stage writes, `train.deterministic`, and the seed alone deciding the data
order and the augmentation whether op determinism is on or off."""
import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from carbrands import params, seeding
from carbrands.data import pipeline, prepared
from carbrands.data.augment import build_augmenter
from carbrands.errors import ParamError
from carbrands.training import devices

ROOT = Path(__file__).resolve().parents[1]
AUGMENT = {"rotation": 0.03, "shift": 0.1, "zoom": 0.1, "shear": 0.1, "flip_horizontal": True,
           "flip_vertical": False, "brightness": 0.2, "contrast": 0.2}
CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni amx_tile amx_bf16 amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu
"""


@pytest.fixture
def determinism():
    """Lets a test switch op determinism; puts back what it was."""
    before = seeding.op_determinism_enabled()
    yield seeding.set_op_determinism
    seeding.set_op_determinism(before)


def test_the_machine_record_names_cpu_instruction_sets_software_and_determinism(tmp_path, determinism):
    (tmp_path / "cpuinfo").write_text(CPUINFO)
    determinism(True)
    rec = devices.machine_record(tmp_path / "cpuinfo")
    assert set(rec) == {"cpu", "cpu_cores", "cpu_flags", "gpus", "platform", "python", "tensorflow", "keras",
                        "onednn", "op_determinism"}
    assert rec["cpu"] == "Intel(R) Xeon(R) Platinum 8480+"
    # only the sets that matter, in a fixed order, from the first processor
    assert rec["cpu_flags"] == ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
                                "amx_tile", "amx_bf16", "amx_int8"]
    assert rec["op_determinism"] is True and isinstance(rec["gpus"], list)
    assert rec["tensorflow"] and rec["keras"] and rec["platform"]
    determinism(False)
    assert devices.machine_record(tmp_path / "cpuinfo")["op_determinism"] is False


def test_the_machine_record_without_proc_cpuinfo(tmp_path):
    model, flags = devices.cpu_info(tmp_path / "absent")
    assert isinstance(model, str) and flags == []


def _params(**train_or_optimizers) -> dict:
    raw = copy.deepcopy(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for section, values in train_or_optimizers.items():
        raw[section].update(values)
    return raw


def test_deterministic_is_a_choice_and_its_type_is_checked():
    assert params.load(ROOT / "params.yaml")["train"]["deterministic"] is True
    assert params.validate(_params(train={"deterministic": False}))["train"]["deterministic"] is False
    with pytest.raises(ParamError, match=r"train\.deterministic: expected true or false, got 'no'"):
        params.validate(_params(train={"deterministic": "no"}))


@pytest.mark.parametrize("seeds,problem", [([], "at least 1"), ([1, 1], "repeat"),
                                           ([1, "2"], r"\[1\]: expected an integer"), (3, "expected a list")])
def test_optimizer_seeds_are_checked(seeds, problem):
    with pytest.raises(ParamError, match=rf"optimizers\.seeds.*{problem}"):
        params.validate(_params(optimizers={"seeds": seeds}))


def test_set_global_seed_turns_determinism_on_or_off(determinism):
    seeding.set_global_seed(1, deterministic=False)
    assert not seeding.op_determinism_enabled()
    seeding.set_global_seed(1)
    assert seeding.op_determinism_enabled()


def test_without_op_determinism_the_seed_still_decides_order_and_augmentation(tiny_prepared, determinism):
    determinism(False)
    train = prepared.load_split(tiny_prepared, "train")

    def two_epochs(seed):
        ds = pipeline.make_dataset(train.images, train.labels, 16, True, seed, build_augmenter(AUGMENT))
        return [np.concatenate([t.numpy().reshape(len(t), -1) for t in batch], axis=1)
                for _ in range(2) for batch in ds]

    first = two_epochs(4)
    for a, b in zip(first, two_epochs(4)):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, two_epochs(5)))
