"""Optional export formats beside the SavedModel: TFLite (LiteRT) and ONNX.

Each is written by Keras's own `model.export(..., format=...)` from the same
(folded) model as the SavedModel, takes the same raw 0-255 float32 images with a
dynamic batch and returns the probabilities. The float32 ones (`tflite`,
`onnx`) are checked against the Keras model the same way: outputs at several
batch sizes within a tolerance.

Two are quantized after training by TensorFlow's TFLite converter:

- `tflite_fp16`: weights stored as float16 (about half the size), computed in
  float32 by CPUs (dequantized when loaded) and in float16 by GPU delegates;
- `tflite_int8`: weights and activations int8, their ranges calibrated on
  representative images (a run's training split); float32 input and output
  (a quantize op at the start, a dequantize op at the end), so it is called
  like the others.

Their outputs differ from the Keras model's by more than a parity tolerance:
what they are checked on is accuracy (`kerazoo.export.certificate`).

The runtimes are extras: `pip install "kerazoo[tflite]"` (the LiteRT
interpreter; TensorFlow's own `tf.lite.Interpreter` is used when it is absent)
and `pip install "kerazoo[onnx]"` (tf2onnx and onnxruntime).
"""

import importlib.util
import warnings

import keras
import numpy as np

from kerazoo.export.errors import ExportError

FORMATS = {
    "tflite": ("model.tflite", "litert", ("tensorflow",), "kerazoo[tflite]"),
    "tflite_fp16": ("model_fp16.tflite", "litert", ("tensorflow",), "kerazoo[tflite]"),
    "tflite_int8": ("model_int8.tflite", "litert", ("tensorflow",), "kerazoo[tflite]"),
    "onnx": ("model.onnx", "onnx", ("tf2onnx", "onnxruntime"), "kerazoo[onnx]"),
}
QUANTIZED = {
    "tflite_fp16": "float16 weights, float32 input and output",
    "tflite_int8": "int8 weights and activations, float32 input and output",
}
# What a served format is run by when it is scored (the model card says).
RUNTIMES = {
    "saved_model": "tf.saved_model.load",
    "tflite": "LiteRT",
    "tflite_fp16": "LiteRT",
    "tflite_int8": "LiteRT",
    "onnx": "onnxruntime",
}


class FormatUnavailableError(ImportError):
    """A format whose converter or runtime is not installed."""


def check_format(fmt):
    """Raises a clear error when `fmt` is unknown or its extra is missing."""
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}"
        )
    _, _, modules, extra = FORMATS[fmt]
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise FormatUnavailableError(
            f"the {fmt} export needs {', '.join(missing)}: pip install {extra!r}"
        )


def write_format(model, fmt, directory, representative=None, log=print):
    """Writes `model` in `fmt` into `directory`; returns the file's path.

    Args:
        model: The (folded) Keras model.
        fmt: A name of `FORMATS`.
        directory: The version folder being written.
        representative: float32 images `[n, H, W, 3]`, 0-255, that
            `tflite_int8` calibrates its activation ranges on (one at a time).
        log: Where a note on operations kept in float32 goes.
    """
    check_format(fmt)
    filename, keras_format, _, _ = FORMATS[fmt]
    path = directory / filename
    options = {}
    if fmt == "tflite_fp16":
        options = _fp16_options()
    elif fmt == "tflite_int8":
        options = _int8_options(representative, strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        try:
            model.export(str(path), format=keras_format, verbose=False, **options)
        except Exception as error:  # the converter raises several kinds
            if fmt != "tflite_int8":
                raise
            # An operation without an int8 kernel: keep it (and only it) in
            # float32 rather than failing the export.
            log(
                f"{filename}: not every operation has an int8 kernel "
                f"({str(error).splitlines()[0][:200]}); those stay float32"
            )
            options = _int8_options(representative, strict=False)
            model.export(str(path), format=keras_format, verbose=False, **options)
    return path


def _fp16_options():
    import tensorflow as tf

    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "target_spec": {"supported_types": [tf.float16]},
    }


def _int8_options(representative, strict):
    import tensorflow as tf

    if representative is None or len(representative) == 0:
        raise ExportError(
            "tflite_int8 needs representative images to calibrate on: export a "
            "fine-tuning run directory (its training split is used), or pass "
            "representative=images to export_saved_model"
        )
    images = np.asarray(representative, "float32")

    def samples():
        for i in range(len(images)):
            yield [images[i : i + 1]]

    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not strict:
        ops.append(tf.lite.OpsSet.TFLITE_BUILTINS)
    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": samples,
        "target_spec": {"supported_ops": ops},
    }


class _TFLiteRunner:
    def __init__(self, path):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = Interpreter(model_path=str(path))
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

        self.shape = None

    def __call__(self, images):
        images = np.asarray(images, "float32")
        if images.shape != self.shape:
            self.interpreter.resize_tensor_input(self.input["index"], images.shape)
            self.interpreter.allocate_tensors()
            self.shape = images.shape
        self.interpreter.set_tensor(self.input["index"], images)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])


class _ONNXRunner:
    def __init__(self, path):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images):
        images = np.asarray(images, "float32")
        return self.session.run(None, {self.input: images})[0]


def runner(fmt, path):
    """A callable running the exported file on a float32 NumPy batch."""
    check_format(fmt)
    return _ONNXRunner(path) if fmt == "onnx" else _TFLiteRunner(path)


def verify_format(fmt, path, model, batch_sizes=(1, 7), atol=1e-4):
    """Runs the file at `path` with its runtime and compares its probabilities
    with `model`'s at each batch size.

    Returns:
        The largest absolute difference per batch size.

    Raises:
        ExportError: a difference above `atol` (None: no limit, for the
            quantized formats), or another output shape.
    """
    run = runner(fmt, path)
    height, width = model.inputs[0].shape[1:3]
    rng = np.random.default_rng(0)
    differences = {}
    for batch in batch_sizes:
        images = rng.uniform(0, 255, (batch, height, width, 3)).astype("float32")
        reference = keras.ops.convert_to_numpy(model(images, training=False))
        served = np.asarray(run(images))
        if served.shape != reference.shape:
            raise ExportError(
                f"{path} returns shape {served.shape} for a batch of {batch}, the "
                f"Keras model {reference.shape}"
            )
        differences[batch] = float(np.max(np.abs(served - reference)))
    worst = max(differences.values())
    if atol is not None and worst > atol:
        raise ExportError(
            f"{path} differs from the Keras model by {worst:.3g} (> {atol:g}): "
            f"{differences}"
        )
    return differences
