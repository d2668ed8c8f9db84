"""Stage `augment_check`: a grid of training images next to their augmented
versions, drawn through the augmenter that training calls (build_augmenter).

Output: plots/augment/grid.png.
"""
import numpy as np

from carbrands import params, paths, plots, seeding, stage
from carbrands.data import prepared
from carbrands.data.augment import build_augmenter

IMAGES = 8


def main() -> None:
    p = params.load()
    seeding.set_global_seed(p["seed"])
    classes = prepared.load_classes(paths.PREPARED)
    train = prepared.load_split(paths.PREPARED, "train")
    rows = np.sort(np.random.default_rng(p["seed"]).choice(len(train), min(IMAGES, len(train)), replace=False))
    originals = np.asarray(train.images[rows])

    augmenter = build_augmenter(p["augment"])
    augmented = np.asarray(augmenter(originals.astype(np.float32), seed=(p["seed"], 0)))

    images, titles = [], []
    for original, changed, label in zip(originals, augmented, train.labels[rows]):
        images += [original, changed.round().astype(np.uint8)]
        titles += [f"{classes[label]}\noriginal", f"{classes[label]}\naugmented"]
    names = augmenter.transforms
    plots.image_grid(images, titles, paths.AUGMENT_GRID, cols=4,
                     title="Training augmentation: " + (", ".join(names) if names else "none (all off)"))
    print(f"augment_check: {len(rows)} images through {', '.join(names) or 'no transforms'} -> {paths.AUGMENT_GRID}")


if __name__ == "__main__":
    stage.run(main)
