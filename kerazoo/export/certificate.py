"""The accuracy certificate of an export: every served format scored on the
test split with its own runtime, against the Keras model on the same images.

`score_formats` reads the test batches once and runs each batch through the
Keras model and every format (the SavedModel reloaded with
`tf.saved_model.load`, TFLite files with the LiteRT interpreter, ONNX with
onnxruntime). `check_certificate` refuses a format whose accuracy is more than
`max_accuracy_drop` below the Keras model's. The certificate goes into the
model card (`assets/model_card.json`) and `certificate_table` prints it.
"""

import numpy as np

from kerazoo.export.errors import ExportError
from kerazoo.export.formats import RUNTIMES

DEFAULT_MAX_ACCURACY_DROP = 0.01


class AccuracyDropError(ExportError):
    """A served format less accurate than its Keras model by more than allowed."""


def check_max_accuracy_drop(value):
    """`value` as a float in [0, 1]; a clear error otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"max_accuracy_drop is a fraction of test images in [0, 1] (0.01 is "
            f"one point); received max_accuracy_drop={value!r}"
        ) from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(
            "max_accuracy_drop is a fraction of test images in [0, 1] (0.01 is "
            f"one point); received max_accuracy_drop={value}"
        )
    return value


def _probabilities(output):
    if isinstance(output, dict):
        output = output["probabilities"]
    if isinstance(output, (list, tuple)):
        output = output[0]
    return np.asarray(output, "float32")


def score_formats(reference, runners, batches):
    """Scores `reference` (the Keras model) and each served format on the same
    labelled images, read once.

    Args:
        reference: A callable `images -> probabilities` (the Keras model's).
        runners: `{format: callable}`, each taking a float32 batch and
            returning probabilities (or a dict holding `probabilities`).
        batches: An iterable of `(images, labels)` batches: float32 images
            `[n, H, W, 3]` (0-255) and integer labels `[n]`.

    Returns:
        `(keras_accuracy, images, {format: record})`, each record holding
        `test_accuracy`, `agreement` (the share of images where the format
        predicts the Keras model's class) and `max_probability_diff`.

    Raises:
        ExportError: no test images.
    """
    correct = {name: 0 for name in runners}
    agree = {name: 0 for name in runners}
    worst = {name: 0.0 for name in runners}
    keras_correct = total = 0
    for images, labels in batches:
        images = np.asarray(images, "float32")
        labels = np.asarray(labels).reshape(-1)
        expected = _probabilities(reference(images))
        keras_class = expected.argmax(-1)
        keras_correct += int(np.sum(keras_class == labels))
        total += len(labels)
        for name, run in runners.items():
            served = _probabilities(run(images))
            served_class = served.argmax(-1)
            correct[name] += int(np.sum(served_class == labels))
            agree[name] += int(np.sum(served_class == keras_class))
            worst[name] = max(worst[name], float(np.max(np.abs(served - expected))))
    if total == 0:
        raise ExportError("the test split has no images to score the export on")
    records = {
        name: {
            "test_accuracy": correct[name] / total,
            "agreement": agree[name] / total,
            "max_probability_diff": worst[name],
        }
        for name in runners
    }
    return keras_correct / total, total, records


def certificate(keras_accuracy, images, records, sizes, max_accuracy_drop):
    """The model card's `certificate`: per format its runtime, file size,
    test accuracy and drop against the Keras model, and whether it passed.

    Args:
        keras_accuracy: The Keras model's accuracy on the test images.
        images: How many test images.
        records: `score_formats`'s records.
        sizes: `{format: bytes}`.
        max_accuracy_drop: The largest drop allowed (0.01: one point).
    """
    formats = {}
    for name, record in records.items():
        drop = keras_accuracy - record["test_accuracy"]
        formats[name] = {
            "runtime": RUNTIMES.get(name, name),
            "bytes": int(sizes[name]),
            "test_accuracy": record["test_accuracy"],
            "accuracy_drop": drop,
            "test_images": images,
            "agreement": record["agreement"],
            "max_probability_diff": record["max_probability_diff"],
            # A drop counted in whole images: no float rounding decides it.
            "passed": bool(round(drop * images) <= max_accuracy_drop * images + 1e-9),
        }
    return {
        "split": "test",
        "test_images": images,
        "keras_accuracy": keras_accuracy,
        "max_accuracy_drop": max_accuracy_drop,
        "formats": formats,
        "forced": [],
    }


def check_certificate(card, force=False):
    """Refuses the formats of a `certificate` that lost too much accuracy.

    Returns:
        The formats kept despite their drop (with `force`); the certificate's
        `forced` lists them.

    Raises:
        AccuracyDropError: without `force`, a format over `max_accuracy_drop`,
            with the numbers of each.
    """
    failed = [name for name, record in card["formats"].items() if not record["passed"]]
    if not failed:
        return []
    if force:
        card["forced"] = failed
        return failed
    limit = card["max_accuracy_drop"]
    points = f"{100 * limit:g} point{'' if 100 * limit == 1 else 's'}"
    lines = [
        f"{name}: test accuracy {card['formats'][name]['test_accuracy']:.4f}, "
        f"{100 * card['formats'][name]['accuracy_drop']:.2f} points below the "
        f"Keras model's {card['keras_accuracy']:.4f}"
        for name in failed
    ]
    raise AccuracyDropError(
        f"refused: {', '.join(failed)} lose{'s' if len(failed) == 1 else ''} more "
        f"than max_accuracy_drop={limit:g} ({points}) on "
        f"{card['test_images']} test images:\n  "
        + "\n  ".join(lines)
        + "\nNothing was written. Leave the format out, raise --max-accuracy-drop, "
        "or pass --force to write it with its drop in the model card"
    )


def certificate_table(card):
    """The certificate as text lines: one row per format and the Keras model."""
    rows = [("format", "runtime", "size", "accuracy", "drop", "")]
    rows.append(("keras", "Keras", "", f"{card['keras_accuracy']:.4f}", "", ""))
    for name, record in card["formats"].items():
        verdict = "ok" if record["passed"] else "over the limit"
        if name in card.get("forced", []):
            verdict += " (forced)"
        rows.append(
            (
                name,
                record["runtime"],
                _size(record["bytes"]),
                f"{record['test_accuracy']:.4f}",
                f"{100 * record['accuracy_drop']:+.2f} pt",
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    points = 100 * card["max_accuracy_drop"]
    lines = [
        f"accuracy on {card['test_images']} test images (max drop {points:g} "
        f"point{'' if points == 1 else 's'}):"
    ]
    for row in rows:
        lines.append(
            "  "
            + "  ".join(
                cell.ljust(w) for cell, w in zip(row, widths, strict=True)
            ).rstrip()
        )
    return lines


def _size(count):
    return f"{count / 1e3:.1f} KB" if count < 1e6 else f"{count / 1e6:.1f} MB"
