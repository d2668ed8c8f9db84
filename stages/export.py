"""Stage `export`: the model named by `export.model` in the forms it is served in, each
checked against the Keras model on the test split before it is kept.

Outputs under models/exported/: saved_model/ (TensorFlow SavedModel, for TensorFlow
Serving), model.tflite (float32 TFLite), parity.json (what the checks found). Each form
carries the class names, input size and resize mode. A form that changes a top-1
prediction, or a probability by more than 1e-4, stops the stage and nothing is written.
"""
from carbrands import params, paths, stage
from carbrands.data import prepared
from carbrands.files import atomic_path, write_json
from carbrands.models import export


def main() -> None:
    name = params.load()["export"]["model"]
    source = paths.model(name)
    keras_model = export.load(source)   # a model without its class names is refused
    test = prepared.load_split(paths.PREPARED, "test")
    reference = export.probabilities(keras_model, test.images)

    checks = {"model": name}
    with atomic_path(paths.EXPORTED) as out:
        out.mkdir()
        export.write_saved_model(keras_model.keras_model, out / paths.EXPORTED_SAVED_MODEL.name,
                                 keras_model.info)
        export.write_tflite(out / paths.EXPORTED_SAVED_MODEL.name, out / paths.EXPORTED_TFLITE.name,
                            keras_model.info)
        for form, path in (("saved_model", paths.EXPORTED_SAVED_MODEL), ("tflite", paths.EXPORTED_TFLITE)):
            loaded = export.load(out / path.name)
            checks[form] = export.parity(reference, export.probabilities(loaded, test.images), form)
            print(f"export {name}: {form} agrees on all {len(test)} test images "
                  f"(largest probability difference {checks[form]['max_abs_difference']:.1e})")
        write_json(out / "parity.json", checks)
    print(f"export {name}: {paths.EXPORTED_SAVED_MODEL}, {paths.EXPORTED_TFLITE}")


if __name__ == "__main__":
    stage.run(main)
