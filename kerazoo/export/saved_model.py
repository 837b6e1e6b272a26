"""SavedModels in TensorFlow Serving's layout, preprocessing inside the graph.

`export_saved_model(model, "saved_models/digits")` writes
`saved_models/digits/1/` (then 2, 3, ...), the layout TensorFlow Serving watches,
with three signatures:

- `serving_default`: float32 images `[batch, H, W, 3]`, raw 0-255;
- `serving_uint8`: the same as uint8;
- `serving_bytes`: a `[batch]` string tensor of encoded JPEG/PNG files, decoded,
  centrally cropped and resized in the graph.

Each returns `probabilities` `[batch, classes]`, `class_index` `[batch]` (int64)
and, when the model has class names, `class_name` `[batch]` (string). The batch
dimension is dynamic. A version is written to a temporary folder and renamed when
complete, so TensorFlow Serving never sees a partial one, and an interrupted
export leaves no version behind. `assets/model_card.json` describes the model.

Given test images, every served format is scored on them with its own runtime
(`kerazoo.export.certificate`), the card records each one's size and accuracy,
and a format more than `max_accuracy_drop` below the Keras model is refused.
"""

import json
import os
import pathlib
import shutil
import tempfile

import keras
import numpy as np

from kerazoo._compat import freeze_function
from kerazoo._compat import sublayers
from kerazoo.export.certificate import DEFAULT_MAX_ACCURACY_DROP
from kerazoo.export.certificate import certificate
from kerazoo.export.certificate import certificate_table
from kerazoo.export.certificate import check_certificate
from kerazoo.export.certificate import check_max_accuracy_drop
from kerazoo.export.certificate import score_formats
from kerazoo.export.errors import ExportError
from kerazoo.export.folding import fold_batch_norms
from kerazoo.export.formats import QUANTIZED
from kerazoo.export.formats import check_format
from kerazoo.export.formats import runner
from kerazoo.export.formats import verify_format
from kerazoo.export.formats import write_format

CARD = "model_card.json"


def _unregistered_layers(model):
    """Layers whose class Keras could not find again when loading the model."""
    bad = []
    for layer in sublayers(model):
        cls = type(layer)
        if cls.__module__.startswith("keras."):
            continue
        name = keras.saving.get_registered_name(cls)
        if keras.saving.get_registered_object(name) is not cls:
            bad.append(f"{layer.name} ({cls.__module__}.{cls.__qualname__})")
    return bad


def next_version(directory):
    """The next integer version under `directory` (1 when there is none)."""
    directory = pathlib.Path(directory)
    versions = [
        int(p.name) for p in directory.glob("*") if p.is_dir() and p.name.isdigit()
    ]
    return max(versions, default=0) + 1


def _prediction(model, images, class_names):
    """The signatures' outputs; `model` is the Keras model or its frozen
    forward function."""
    import tensorflow as tf

    if isinstance(model, keras.Model):
        probabilities = model(images, training=False)
    else:
        probabilities = model(images)
    if isinstance(probabilities, (list, tuple)):
        probabilities = probabilities[0]
    probabilities = tf.cast(probabilities, "float32")
    index = tf.argmax(probabilities, axis=-1)
    out = {"probabilities": probabilities, "class_index": index}
    if class_names:
        out["class_name"] = tf.gather(tf.constant(class_names), index)
    return out


def decode_images(encoded, size, crop_fraction=1.0):
    """Encoded JPEG/PNG strings `[batch]` -> float32 images `[batch, H, W, 3]`:
    decode to RGB, keep the central `crop_fraction` of the shorter side, resize
    bilinearly (antialiased) to `size`, values 0-255."""
    import tensorflow as tf

    height, width = size

    def one(data):
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image = tf.cast(image, "float32")
        shape = tf.shape(image)
        side = tf.cast(
            tf.round(
                tf.cast(tf.minimum(shape[0], shape[1]), "float32") * crop_fraction
            ),
            "int32",
        )
        if crop_fraction < 1.0:
            top = (shape[0] - side) // 2
            left = (shape[1] - side) // 2
            image = image[top : top + side, left : left + side]
        image = tf.image.resize(image, (height, width), antialias=True)
        return tf.clip_by_value(image, 0.0, 255.0)

    return tf.map_fn(
        one, encoded, fn_output_signature=tf.TensorSpec([height, width, 3], "float32")
    )


# Above this many bytes of weights the graph keeps its variables: a frozen
# graph holds them in saved_model.pb, and a protocol buffer is at most 2 GiB.
FREEZE_LIMIT_BYTES = 1 << 30


def _frozen_forward(model, spec):
    """`(function, None)`: the model's inference function with its weights as
    constants, or `(None, reason)` when it is kept with variables."""
    import tensorflow as tf

    size = sum(
        int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.weights
    )
    if size > FREEZE_LIMIT_BYTES:
        return None, (
            f"not frozen: {size / 2**20:,.0f} MiB of weights, over the "
            f"{FREEZE_LIMIT_BYTES / 2**20:,.0f} MiB a graph may hold; served "
            "with variables"
        )
    function = tf.function(lambda images: model(images, training=False))
    try:
        frozen = freeze_function(function.get_concrete_function(spec))
    except (ValueError, TypeError, NotImplementedError) as error:
        return None, f"not frozen ({error}); served with variables"
    return (lambda images: frozen(images)[0]), None


def export_saved_model(
    model,
    directory,
    version=None,
    *,
    class_names=None,
    card=None,
    crop_fraction=1.0,
    fold=True,
    freeze=True,
    formats=(),
    representative=None,
    test_data=None,
    max_accuracy_drop=DEFAULT_MAX_ACCURACY_DROP,
    force=False,
    overwrite=False,
    verify=True,
    log=print,
):
    """Exports a classifier for TensorFlow Serving.

    Args:
        model: A Keras classifier taking raw 0-255 RGB images (every kerazoo
            model does: its preprocessing is its first layer).
        directory: `saved_models/NAME`; the version goes under it.
        version: Integer version; default: the next free one.
        class_names: One name per class; adds the `class_name` output.
        card: Extra fields for `assets/model_card.json` (weights source,
            training recipe, metrics...).
        crop_fraction: Central crop of `serving_bytes` before resizing (1.0 for
            models fine-tuned on whole resized images, 0.875 for ImageNet
            weights evaluated the usual way).
        fold: Fold every inference-mode batch norm into the convolution or
            dense layer before it (`fold_batch_norms`), so the served graph
            does less work; outputs stay within 1e-4 of `model`. False keeps
            the graph as trained.
        freeze: Store the weights as constants of the served graph instead of
            variables (in `saved_model.pb`, not `variables/`), so that
            TensorFlow's graph optimizer and oneDNN treat them as constants
            (a convolution's filter is laid out once, not on every call):
            the same outputs, served faster (benchmarks/RESULTS.md). Models
            with over 1 GiB of weights (a graph holds at most 2 GiB) keep
            their variables, and so does `freeze=False`, for readers that
            want the variables in the SavedModel.
        formats: Also write these beside the SavedModel, in the version
            folder: `"tflite"` (`model.tflite`) and `"onnx"` (`model.onnx`),
            each checked against `model` within 1e-4, and the quantized
            `"tflite_fp16"` (`model_fp16.tflite`) and `"tflite_int8"`
            (`model_int8.tflite`, int8 inside, float32 input and output),
            checked by accuracy (`kerazoo.export.formats`).
        representative: float32 images `[n, H, W, 3]`, 0-255 (100-200 of the
            training split), that `tflite_int8` calibrates on.
        test_data: Labelled test images, an iterable of `(images, labels)`
            batches read once: each served format (the SavedModel too) is
            scored on them with its runtime, against `model`, and the card's
            `certificate` records it. None: not scored.
        max_accuracy_drop: The most accuracy a format may lose against
            `model` on `test_data` (0.01: one point); one that loses more is
            refused and nothing is written.
        force: Write a format that loses more anyway; the certificate lists it
            under `forced`.
        overwrite: Replace an existing version instead of refusing.
        verify: Reload the export in a fresh Python process that does not
            import kerazoo and compare it with `model` (`verify_export`),
            within 1e-5, or 1e-4 when folded.
        log: Where progress lines go.

    Returns:
        The path of the version folder.
    """
    import tensorflow as tf

    if keras.backend.backend() != "tensorflow":
        raise ExportError(
            "export_saved_model needs the TensorFlow backend (KERAS_BACKEND="
            f"tensorflow); this process uses {keras.backend.backend()!r}. "
            "Save the model (model.save('model.keras')) and export that file "
            "with kerazoo.export.export_source or `kerazoo export`, which "
            "re-load it into TensorFlow in a child process"
        )
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or shape[-1] != 3 or None in shape[:2]:
        raise ExportError(
            "export needs a model with a fixed image input (height, width, 3); "
            f"got input shape {shape}"
        )
    formats = list(dict.fromkeys(formats))
    for fmt in formats:
        check_format(fmt)
    max_accuracy_drop = check_max_accuracy_drop(max_accuracy_drop)
    if "tflite_int8" in formats and (representative is None or not len(representative)):
        raise ExportError(
            "tflite_int8 needs representative images to calibrate on: export a "
            "fine-tuning run directory (100-200 images of its training split are "
            "used), or pass representative=images to export_saved_model"
        )
    unregistered = _unregistered_layers(model)
    if unregistered:
        raise ExportError(
            "these layers are not registered for serialization, so the exported "
            "model card cannot describe them and the model cannot be reloaded: "
            + ", ".join(unregistered)
            + ". Decorate their classes with "
            "@keras.saving.register_keras_serializable(package=...)"
        )
    classes = int(
        _prediction(model, np.zeros((1, *shape), "float32"), None)[
            "probabilities"
        ].shape[-1]
    )
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != classes:
            raise ExportError(
                f"{len(class_names)} class names for a model with {classes} outputs"
            )
    directory = pathlib.Path(directory)
    version = next_version(directory) if version is None else int(version)
    if version < 1:
        raise ExportError(f"a version is a positive integer, got {version}")
    target = directory / str(version)
    if target.exists() and not overwrite:
        raise ExportError(
            f"{target} already exists; pass overwrite=True (--overwrite) to replace "
            "it, or another version"
        )
    height, width = shape[:2]

    source = model
    folding = None
    if fold:
        model, folding = fold_batch_norms(source)
        log(folding.summary())

    float_spec = tf.TensorSpec([None, height, width, 3], tf.float32, name="images")
    forward = None
    if freeze:
        forward, why_not = _frozen_forward(model, float_spec)
        log("weights frozen into the served graph" if forward else why_not)
    archive = keras.export.ExportArchive()
    if forward is None:
        forward = model
        archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda images: _prediction(forward, images, class_names),
        input_signature=[float_spec],
    )
    archive.add_endpoint(
        "serving_uint8",
        lambda images: _prediction(forward, tf.cast(images, "float32"), class_names),
        input_signature=[
            tf.TensorSpec([None, height, width, 3], tf.uint8, name="images")
        ],
    )
    archive.add_endpoint(
        "serving_bytes",
        lambda encoded: _prediction(
            forward,
            decode_images(encoded, (height, width), crop_fraction),
            class_names,
        ),
        input_signature=[tf.TensorSpec([None], tf.string, name="encoded")],
    )

    created = [p for p in (directory, *directory.parents) if not p.exists()]
    directory.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=directory))
    done = False
    try:
        # A frozen graph's custom gradients (swish's) capture constants that
        # the saver cannot trace; serving needs no gradient.
        archive.write_out(
            str(tmp),
            options=tf.saved_model.SaveOptions(experimental_custom_gradients=False),
            verbose=False,
        )
        sizes = {"saved_model": _folder_bytes(tmp)}
        written = {}
        for fmt in formats:
            written[fmt] = _write_format(
                model, source, fmt, tmp, verify, representative, log
            )
            sizes[fmt] = written[fmt]["bytes"]
        info = {
            "name": directory.name,
            "version": version,
            "architecture": model.name,
            "input_size": [height, width],
            "input": "RGB images, raw 0-255, channels last",
            "preprocessing": "inside the model (its first layer)",
            "classes": classes,
            "class_names": class_names,
            "crop_fraction": crop_fraction,
            "signatures": ["serving_default", "serving_uint8", "serving_bytes"],
            "formats": written,
            "parameters": int(source.count_params()),
            "folded_batch_norms": len(folding.folded) if folding else 0,
            "frozen": forward is not model,
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            **(card or {}),
        }
        (tmp / "assets").mkdir(exist_ok=True)
        (tmp / "assets" / CARD).write_text(json.dumps(info, indent=2))
        if verify:
            verify_export(tmp, source, log=log)  # 1e-4 if folded, by the card
        if test_data is not None:
            info["certificate"] = _certify(
                source, tmp, written, sizes, test_data, max_accuracy_drop, force, log
            )
            (tmp / "assets" / CARD).write_text(json.dumps(info, indent=2))
        if target.exists():
            old = directory / f".old-{version}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
        done = True
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not done:
            _remove_empty(created)
    log(f"exported {target}")
    log(
        "serve it with: docker run -p 8501:8501 "
        f"-v {directory.resolve()}:/models/{directory.name} "
        f"-e MODEL_NAME={directory.name} tensorflow/serving"
    )
    return target


def _remove_empty(folders):
    """Removes the folders an export created (innermost first) that it left
    empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else is in it
            return


def _folder_bytes(folder):
    return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*") if p.is_file())


def _write_format(model, source, fmt, directory, verify, representative, log):
    path = write_format(model, fmt, directory, representative, log=log)
    record = {"file": path.name, "bytes": path.stat().st_size}
    if fmt in QUANTIZED:
        record["quantization"] = QUANTIZED[fmt]
        if fmt == "tflite_int8":
            record["calibration_images"] = len(representative)
        if verify:
            # Shapes and batch sizes only: its accuracy is what is checked.
            verify_format(fmt, path, source, atol=None)
            log(f"checked {path.name}: runs at batch sizes 1, 7")
    elif verify:
        differences = verify_format(fmt, path, source)
        record["max_abs_diff"] = max(differences.values())
        log(
            f"verified {path.name}: max |difference| "
            f"{record['max_abs_diff']:.2g} at batch sizes "
            f"{', '.join(map(str, differences))}"
        )
    return record


def _certify(source, folder, written, sizes, test_data, max_drop, force, log):
    """Scores the SavedModel in `folder` and every written format on
    `test_data`, logs the table and refuses (unless `force`) a format over
    `max_drop`; returns the certificate."""
    import tensorflow as tf

    served = tf.saved_model.load(str(folder)).signatures["serving_default"]
    runners = {"saved_model": lambda x: served(images=tf.constant(x))}
    for fmt, record in written.items():
        runners[fmt] = runner(fmt, folder / record["file"])

    def reference(images):
        return keras.ops.convert_to_numpy(source(images, training=False))

    keras_accuracy, images, records = score_formats(reference, runners, test_data)
    card = certificate(keras_accuracy, images, records, sizes, max_drop)
    try:
        forced = check_certificate(card, force)
    finally:
        for line in certificate_table(card):
            log(line)
    if forced:
        log(f"written despite their accuracy drop (--force): {', '.join(forced)}")
    return card


_CHILD = r"""
import json, sys
import numpy as np
import tensorflow as tf
path, data = sys.argv[1], np.load(sys.argv[2])
loaded = tf.saved_model.load(path)
report = {"kerazoo_imported": any(m.startswith("kerazoo") for m in sys.modules)}
signatures = {}
def spec(specs):
    return {k: [v.dtype.name, v.shape.as_list()] for k, v in specs.items()}
for name, fn in loaded.signatures.items():
    _, inputs = fn.structured_input_signature
    signatures[name] = {"inputs": spec(inputs), "outputs": spec(fn.structured_outputs)}
report["signatures"] = signatures
outputs = {}
for key in data.files:
    kind, batch = key.split("_")
    fn = loaded.signatures["serving_uint8" if kind == "uint8" else "serving_default"]
    result = fn(images=tf.constant(data[key]))
    outputs[key] = result["probabilities"].numpy()
np.savez(sys.argv[3], **outputs)
print(json.dumps(report))
"""


def verify_export(path, model=None, batch_sizes=(1, 7, 32), atol=None, log=print):
    """Reloads a SavedModel with `tf.saved_model.load` in a fresh Python process
    that does not import kerazoo, checks its signatures, and (given the Keras
    model) compares `probabilities` at each batch size.

    Returns:
        A dict: `signatures` (names -> input/output dtypes and shapes) and
        `max_abs_diff` per batch size. `atol` defaults to 1e-5, or 1e-4 for an
        export whose batch norms were folded (its model card says).

    Raises:
        ExportError: a missing signature, a wrong dtype or shape, a difference
            above `atol`, or a process that cannot load the export.
    """
    import subprocess
    import sys

    # Absolute: the check runs in another process and folder.
    path = pathlib.Path(path).resolve()
    card = json.loads((path / "assets" / CARD).read_text())
    height, width = card["input_size"]
    classes = card["classes"]
    if atol is None:
        atol = 1e-4 if card.get("folded_batch_norms") else 1e-5
    rng = np.random.default_rng(0)
    inputs = {}
    for batch in batch_sizes:
        inputs[f"float_{batch}"] = rng.uniform(
            0, 255, (batch, height, width, 3)
        ).astype("float32")
    inputs[f"uint8_{batch_sizes[0]}"] = rng.integers(
        0, 256, (batch_sizes[0], height, width, 3), dtype=np.uint8
    )
    with tempfile.TemporaryDirectory() as tmp:
        data, out = pathlib.Path(tmp) / "in.npz", pathlib.Path(tmp) / "out.npz"
        np.savez(data, **inputs)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        result = subprocess.run(
            [sys.executable, "-c", _CHILD, str(path), str(data), str(out)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp,
        )
        if result.returncode != 0:
            raise ExportError(
                f"{path} does not load with tf.saved_model.load:\n"
                + result.stderr[-3000:]
            )
        report = json.loads(result.stdout.strip().splitlines()[-1])
        served = dict(np.load(out))
    if report["kerazoo_imported"]:
        raise ExportError("the verifying process imported kerazoo")
    expected = {
        "serving_default": ("float32", [None, height, width, 3]),
        "serving_uint8": ("uint8", [None, height, width, 3]),
        "serving_bytes": ("string", [None]),
    }
    for name, (dtype, shape) in expected.items():
        signature = report["signatures"].get(name)
        if signature is None:
            raise ExportError(
                f"{path} has no {name!r} signature ({', '.join(report['signatures'])})"
            )
        (got,) = signature["inputs"].values()
        if got != [dtype, shape]:
            raise ExportError(f"{name} takes {got}, expected {[dtype, shape]}")
        probabilities = signature["outputs"]["probabilities"]
        if probabilities != ["float32", [None, classes]]:
            raise ExportError(f"{name} returns probabilities {probabilities}")
    differences = {}
    if model is not None:
        for key, images in inputs.items():
            reference = keras.ops.convert_to_numpy(
                model(images.astype("float32"), training=False)
            )
            differences[key] = float(np.max(np.abs(reference - served[key])))
        worst = max(differences.values())
        if worst > atol:
            raise ExportError(
                f"the export differs from the Keras model by {worst:.3g} "
                f"(> {atol:g}): {differences}"
            )
        log(
            f"verified in a fresh process: signatures {', '.join(expected)}; max "
            f"|difference| {worst:.2g} at batch sizes "
            f"{', '.join(map(str, batch_sizes))}"
        )
    return {"signatures": report["signatures"], "max_abs_diff": differences}
