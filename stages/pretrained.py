"""Stage `pretrained`: the transfer backbone's weights as one DVC-tracked file.

Outputs: models/pretrained/<backbone>_notop.weights.h5, details/pretrained.json
(route, whether the weights are pretrained at all, and a hash of the weight values).
"""
from carbrands import params, paths, seeding, stage
from carbrands.files import write_json
from carbrands.models import weights


def main() -> None:
    p = params.load()
    backbone, source = p["transfer"]["backbone"], p["transfer"]["weights"]
    seeding.set_global_seed(p["seed"])  # only `none` draws random numbers
    out = paths.PRETRAINED / weights.weights_filename(backbone)
    record = weights.obtain(backbone, source, out)
    # one weights file in the directory: a file of another backbone must not linger
    for old in paths.PRETRAINED.glob("*.weights.h5"):
        if old != out:
            old.unlink()
    write_json(paths.PRETRAINED_RECORD, record)
    state = "pretrained" if record["pretrained"] else "NOT pretrained (random initialisation)"
    print(f"{backbone} weights via {record['route']}: {out} ({state}, values sha256 {record['sha256'][:12]})")


if __name__ == "__main__":
    stage.run(main)
