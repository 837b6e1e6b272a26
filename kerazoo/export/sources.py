"""What `kerazoo export SOURCE` accepts: a `.keras` file, a fine-tuning run
directory, or a registry name with pretrained weights.

Under another Keras backend (JAX, PyTorch) the export re-loads SOURCE into
TensorFlow in a child process (`kerazoo export` with `KERAS_BACKEND=tensorflow`:
a `.keras` file is the same under every backend), and this process then
verifies the SavedModel against its own model, so that what serving answers is
checked against the model as it was trained.

A run directory also brings its recipe's data: the test split scores every
served format (the model card's accuracy certificate) and the training split
calibrates `tflite_int8`."""

import json
import os
import pathlib
import subprocess
import sys
import tempfile

import keras
import numpy as np

from kerazoo.api import load_model
from kerazoo.export.certificate import DEFAULT_MAX_ACCURACY_DROP
from kerazoo.export.saved_model import ExportError
from kerazoo.export.saved_model import export_saved_model
from kerazoo.export.saved_model import next_version
from kerazoo.export.saved_model import verify_export

# Training images tflite_int8 calibrates on (TFLite's guidance: 100-500).
CALIBRATION_IMAGES = 200
SCORE_BATCH = 32


def load_source(source, weights="imagenet"):
    """Returns `(model, class_names, card, crop_fraction)` for a SOURCE."""
    path = pathlib.Path(source)
    if path.is_dir():
        model_file, report_file = path / "model.keras", path / "report.json"
        if not (model_file.exists() and report_file.exists()):
            raise ExportError(
                f"{path} is not a finished fine-tuning run (no model.keras and "
                "report.json)"
            )
        report = json.loads(report_file.read_text())
        model = load_model(model_file)
        card = {
            "source": str(path.resolve()),
            "weights": report["recipe"]["model"].get("weights"),
            "recipe": report["recipe"],
            "metrics": {
                "test_accuracy": report["test_accuracy"],
                "test_images": report["test_images"],
                "stage1_test_accuracy": report["stage1"].get("test_accuracy"),
            },
            "data": report["data"]["uri"],
        }
        return model, report["data"]["classes"], card, 1.0
    if path.suffix == ".keras":
        if not path.exists():
            raise ExportError(f"no model file at {path}")
        model = load_model(path)
        return model, None, {"source": str(path.resolve())}, 1.0
    from kerazoo.models import create_model
    from kerazoo.models import list_models

    if source not in list_models():
        from kerazoo._checks import unknown_name_error

        raise unknown_name_error("export source", source, list_models())
    model = create_model(source, weights=weights)
    names = None
    if weights == "imagenet" and model.outputs[0].shape[-1] == 1000:
        from kerazoo.weights.predict import imagenet_class_names

        names = imagenet_class_names()
    return model, names, {"source": source, "weights": weights}, 0.875


def run_recipe(run_dir):
    """The validated recipe of a finished run directory, or None for another
    source."""
    report = pathlib.Path(run_dir) / "report.json"
    if not pathlib.Path(run_dir).is_dir() or not report.exists():
        return None
    from kerazoo.recipes import validate_recipe

    return validate_recipe(
        json.loads(report.read_text())["recipe"], source=f"{report} (recipe)"
    )


def _recipe_data(recipe):
    from kerazoo.data import load_data

    return load_data(
        recipe.data.uri,
        seed=recipe.seed,
        data_dir=recipe.data.data_dir,
        download=recipe.data.download,
    )


def scoring_batches(data, image_size, batch_size=SCORE_BATCH):
    """The test split as `(float32 images, int labels)` NumPy batches, in
    order, resized as the run evaluated them; streamed, not held."""
    from kerazoo.data.pipeline import image_pipeline

    dataset = image_pipeline(data, "test", image_size, batch_size, cache=False)
    return dataset.as_numpy_iterator()


def calibration_images_of(data, image_size, count=CALIBRATION_IMAGES, seed=0):
    """`count` images of the training split (fewer when it is smaller), drawn
    in a seeded order, not augmented: float32 `[n, H, W, 3]`, 0-255."""
    from kerazoo.data.pipeline import image_pipeline

    if count < 1:
        raise ValueError(f"calibration_images must be >= 1; received {count}")
    dataset = image_pipeline(
        data, "train", image_size, 1, training=True, seed=seed, cache=False
    )
    images = [x for x, _ in dataset.take(count).as_numpy_iterator()]
    if not images:
        raise ExportError(f"{data.uri}: no training images to calibrate int8 on")
    return np.concatenate(images).astype("float32")


def export_source(
    source,
    name,
    version=None,
    out="saved_models",
    *,
    formats=(),
    score=True,
    max_accuracy_drop=None,
    calibration_images=None,
    **kwargs,
):
    """Loads SOURCE (`load_source`) and exports it to `out/name/version`.

    For a run directory, `score` scores every served format on the recipe's
    test split (the accuracy certificate), `tflite_int8` calibrates on
    `calibration_images` images of its training split (default: the recipe's
    `export.calibration_images`, else 200), and `max_accuracy_drop` defaults
    to the recipe's `export.max_accuracy_drop` (else 0.01). Other sources
    have no data: they are not scored and cannot be exported as int8.
    """
    weights = kwargs.pop("weights", "imagenet")
    crop = kwargs.pop("crop_fraction", None)
    formats = list(formats)
    if keras.backend.backend() != "tensorflow":
        return _export_in_tensorflow(
            source,
            name,
            version,
            out,
            formats=formats,
            score=score,
            max_accuracy_drop=max_accuracy_drop,
            calibration_images=calibration_images,
            weights=weights,
            crop_fraction=crop,
            **kwargs,
        )
    model, class_names, card, default_crop = load_source(source, weights)
    recipe = run_recipe(source)
    settings = recipe.export if recipe is not None else None
    if max_accuracy_drop is None:
        max_accuracy_drop = getattr(
            settings, "max_accuracy_drop", DEFAULT_MAX_ACCURACY_DROP
        )
    if calibration_images is None:
        calibration_images = getattr(settings, "calibration_images", CALIBRATION_IMAGES)
    log = kwargs.get("log", print)
    test_data = representative = None
    if recipe is None:
        if "tflite_int8" in formats:
            raise ExportError(
                f"tflite_int8 calibrates on a run's training split, and {source} "
                "is not a fine-tuning run directory: export the run, or call "
                "kerazoo.export.export_saved_model(..., representative=images)"
            )
        if score:
            log(f"not scored: {source} brings no test split (a run directory does)")
    elif score or "tflite_int8" in formats:
        try:
            data = _recipe_data(recipe)
        except (ValueError, OSError) as error:
            uses = "scores the formats on" if score else "calibrates int8 on"
            raise ExportError(
                f"the export {uses} the run's data ({recipe.data.uri}), which "
                f"cannot be read: {error}. Pass --no-score (score=False) to "
                "export without the accuracy certificate"
            ) from None
        size = tuple(model.inputs[0].shape[1:3])
        if score:
            test_data = scoring_batches(data, size)
        if "tflite_int8" in formats:
            representative = calibration_images_of(
                data, size, calibration_images, recipe.seed
            )
            log(
                f"calibrating int8 on {len(representative)} images of "
                f"{data.uri}'s training split"
            )
    return export_saved_model(
        model,
        pathlib.Path(out) / name,
        version,
        class_names=class_names,
        card=card,
        crop_fraction=default_crop if crop is None else crop,
        formats=formats,
        representative=representative,
        test_data=test_data,
        max_accuracy_drop=max_accuracy_drop,
        **kwargs,
    )


def _export_in_tensorflow(
    source,
    name,
    version,
    out,
    *,
    formats,
    score,
    max_accuracy_drop,
    calibration_images,
    weights,
    crop_fraction,
    fold=True,
    freeze=True,
    force=False,
    overwrite=False,
    verify=True,
    log=print,
):
    """`export_source` from a process whose Keras backend is not TensorFlow:
    runs `kerazoo export` with the TensorFlow backend in a child process, its
    output relayed to `log`, then verifies the export against SOURCE loaded in
    this process's backend."""
    directory = pathlib.Path(out) / name
    version = next_version(directory) if version is None else int(version)
    # The child's --verify would compare the export with its own TensorFlow
    # copy of the model; the check that matters is against this backend's.
    argv = [sys.executable, "-m", "kerazoo.cli", "export", str(source), "--name", name]
    argv += ["--version", str(version), "--out", str(out), "--no-verify"]
    argv += ["--weights", str(weights)]
    for fmt in formats:
        argv += ["--format", fmt]
    for flag, value in (
        ("--crop", crop_fraction),
        ("--max-accuracy-drop", max_accuracy_drop),
        ("--calibration-images", calibration_images),
    ):
        if value is not None:
            argv += [flag, str(value)]
    for flag, on in (
        ("--no-score", not score),
        ("--no-fold", not fold),
        ("--no-freeze", not freeze),
        ("--force", force),
        ("--overwrite", overwrite),
    ):
        if on:
            argv.append(flag)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    log(
        f"backend {keras.backend.backend()}: exporting through TensorFlow in a "
        "child process (the .keras model re-loaded there)"
    )
    # stderr goes to a file: a pipe left unread while stdout is relayed
    # would fill with TensorFlow's warnings and stall the child.
    with tempfile.TemporaryFile("w+") as errors:
        child = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        for line in child.stdout:
            log(line.rstrip("\n"))
        failed = child.wait() != 0
        errors.seek(0)
        lines = [line for line in errors.read().splitlines() if line.strip()]
    if failed:
        prefix = "kerazoo export: error: "
        said = [line.removeprefix(prefix) for line in lines if line.startswith(prefix)]
        raise ExportError(
            said[-1]
            if said
            else "the TensorFlow export process failed:\n" + "\n".join(lines[-20:])
        )
    target = directory / str(version)
    if verify:
        model = load_source(source, weights)[0]
        verify_export(target, model, log=log)
    return target


def model_of_export(path):
    """The Keras model an export came from, when its source is still there."""
    card = json.loads((pathlib.Path(path) / "assets" / "model_card.json").read_text())
    source = card.get("source")
    if not source:
        return None
    if pathlib.Path(source).exists() or "/" not in source:
        try:
            return load_source(source, card.get("weights") or "imagenet")[0]
        except (ExportError, ValueError, OSError):
            return None
    return None
