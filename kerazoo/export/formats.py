"""Optional export formats beside the SavedModel: TFLite (LiteRT) and ONNX.

Each is written by Keras's own `model.export(..., format=...)` from the same
(folded) model as the SavedModel, takes the same raw 0-255 float32 images with a
dynamic batch and returns the probabilities, and is checked against the Keras
model the same way: outputs at several batch sizes within a tolerance.

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
    "onnx": ("model.onnx", "onnx", ("tf2onnx", "onnxruntime"), "kerazoo[onnx]"),
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


def write_format(model, fmt, directory):
    """Writes `model` in `fmt` into `directory`; returns the file's path."""
    check_format(fmt)
    filename, keras_format, _, _ = FORMATS[fmt]
    path = directory / filename
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model.export(str(path), format=keras_format, verbose=False)
    return path


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

    def __call__(self, images):
        self.interpreter.resize_tensor_input(self.input["index"], images.shape)
        self.interpreter.allocate_tensors()
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
        return self.session.run(None, {self.input: images})[0]


def runner(fmt, path):
    """A callable running the exported file on a float32 NumPy batch."""
    check_format(fmt)
    return {"tflite": _TFLiteRunner, "onnx": _ONNXRunner}[fmt](path)


def verify_format(fmt, path, model, batch_sizes=(1, 7), atol=1e-4):
    """Runs the file at `path` with its runtime and compares its probabilities
    with `model`'s at each batch size.

    Returns:
        The largest absolute difference per batch size.

    Raises:
        ExportError: a difference above `atol`, or another output shape.
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
    if worst > atol:
        raise ExportError(
            f"{path} differs from the Keras model by {worst:.3g} (> {atol:g}): "
            f"{differences}"
        )
    return differences
