"""Images per second delivered by the training input, with no model, against the
notebook's ImageDataGenerator on the same images at the same size.

Ours: prepared uint8 arrays -> make_dataset with the augmenter from
build_augmenter(params' augment) -> batches of 32 (what the `train` stage feeds
its model). Notebook: ImageDataGenerator(rescale, shifts, zoom, shear, flip,
brightness).flow_from_directory over the JPEG folder (decodes every file in
every epoch).

    .venv/bin/python bench/input_pipeline.py [--tiny] [--batches N]
"""
from __future__ import annotations

import argparse
import importlib.util
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _common as common  # noqa: E402

TARGET_RATIO = 5.0
BATCH = 32
FULL = dict(brands=10, per_brand={"train": 60, "val": 5, "test": 5}, size=224, batches=150)
TINY = dict(brands=3, per_brand={"train": 8, "val": 2, "test": 2}, size=32, batches=3)
INSTALL_HINT = "pip install -r bench/requirements.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="tiny sizes: checks that the benchmark runs")
    ap.add_argument("--batches", type=int, help="batches timed per approach")
    args = ap.parse_args()
    cfg = dict(TINY if args.tiny else FULL)
    if args.batches:
        cfg["batches"] = args.batches
    if not args.tiny and not _has_tf_keras():
        raise SystemExit(f"the notebook comparison needs tf_keras: {INSTALL_HINT}")

    with tempfile.TemporaryDirectory(prefix="bench-input-") as tmp:
        project = Path(tmp)
        print(f"preparing {cfg['brands']} brands x {cfg['per_brand']} synthetic images at "
              f"{cfg['size']}x{cfg['size']} ...", flush=True)
        common.build_prepared(project, cfg["brands"], cfg["per_brand"], cfg["size"])
        rows = measure_library(project, cfg["batches"])
        notebook = measure_notebook(project / "data/synthetic/train", cfg["size"], cfg["batches"])
    if notebook:
        rows.append(notebook)
    result = {"config": {**cfg, "batch_size": BATCH}, "rows": rows}

    common.print_table(f"Training input at {cfg['size']}x{cfg['size']}, batches of {BATCH}, no model "
                       f"({cfg['brands'] * cfg['per_brand']['train']} train images)", rows,
                       ["approach", "images", "seconds", "images_per_second"])
    if notebook:
        ours = rows[0]["images_per_second"]  # as the train stage runs it
        result["ratio"] = round(ours / notebook["images_per_second"], 2)
        print(f"\nratio (ours as the train stage runs it / notebook): {result['ratio']:.1f}x "
              f"(target >= {TARGET_RATIO:.0f}x: {'met' if result['ratio'] >= TARGET_RATIO else 'NOT met'})"
              + (" (tiny sizes: not a measurement)" if args.tiny else ""))
    else:
        result["ratio"] = None
    common.save_json("input_pipeline", result, args.tiny)


def measure_library(project: Path, batches: int) -> list[dict]:
    """The library's input pipeline with and without op determinism (the train stage
    turns it on; a stateful augmenter map would then run on one core)."""
    from carbrands import params, seeding, startup

    startup.import_tensorflow()
    from carbrands.data import prepared
    from carbrands.data.augment import build_augmenter
    from carbrands.data.pipeline import make_dataset

    p = params.load(project / "params.yaml")
    train = prepared.load_split(project / "data/prepared", "train")

    def run(label):
        augmenter = build_augmenter(p["augment"])
        ds = make_dataset(train.images, train.labels, BATCH, True, p["seed"], augmenter)
        return _time_batches(label, iter(ds.repeat()), batches, lambda b: int(b[1].shape[0]))

    free = run("library, op determinism off")
    seeding.set_global_seed(p["seed"])  # process-wide and irreversible: measured second
    staged = run("library, as the train stage (op determinism on)")
    return [staged, free]


def measure_notebook(train_dir: Path, size: int, batches: int) -> dict | None:
    if not _has_tf_keras():
        print(f"\nnotebook comparison skipped: tf_keras is not installed ({INSTALL_HINT})")
        return None
    import tf_keras

    gen = tf_keras.preprocessing.image.ImageDataGenerator(
        rescale=1 / 255, width_shift_range=0.1, height_shift_range=0.1, zoom_range=0.1, shear_range=0.1,
        horizontal_flip=True, brightness_range=(0.8, 1.2))
    flow = gen.flow_from_directory(str(train_dir), target_size=(size, size), batch_size=BATCH)
    return _time_batches("notebook ImageDataGenerator.flow_from_directory", flow, batches,
                         lambda b: len(b[1]))


def _has_tf_keras() -> bool:
    return importlib.util.find_spec("tf_keras") is not None


def _time_batches(label: str, batches_iter, n: int, count, warmup: int = 2) -> dict:
    """Images per second over n batches, after warm-up batches (graph tracing, first reads)."""
    for _ in itertools.islice(batches_iter, warmup):
        pass
    images = 0
    start = time.perf_counter()
    for batch in itertools.islice(batches_iter, n):
        images += count(batch)
    seconds = time.perf_counter() - start
    print(f"  {label}: {images} images in {seconds:.2f} s", flush=True)
    return {"approach": label, "images": images, "seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1)}


if __name__ == "__main__":
    main()
