"""What a finished run gets right and wrong: `kerazoo interpret RUN_DIR`.

From a run directory (`recipe.yaml`, `report.json`, `model.keras`), on the
test split the recipe's data give again: a per-class precision / recall / F1
table, the most confused pairs of classes, a grid of the test images with the
highest loss, and Grad-CAM overlays computed from the last 4-D feature map of
the model's nested `body`. Everything is written to `RUN_DIR/interpret/`:
`top_losses.png`, `grad_cam.png`, `interpret.json` and one self-contained
`report.html` (images inlined, no link outside the file) that also shows the
run's `curves.png` and `confusion.png`.

Example:

>>> from kerazoo.finetune.interpret import interpret
>>> summary = interpret("runs/quickstart", images=[0, 5, 7])  # doctest: +SKIP
>>> summary["files"]["html"]  # doctest: +SKIP
'runs/quickstart/interpret/report.html'
"""

import base64
import heapq
import html
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf
import yaml

from kerazoo._compat import call_inputs
from kerazoo._compat import producer
from kerazoo.api import load_model
from kerazoo.data.pipeline import Pipelines
from kerazoo.finetune.engine import load_recipe_data
from kerazoo.finetune.report import confusion_matrix
from kerazoo.recipes import validate_recipe

RUN_FILES = ("recipe.yaml", "report.json", "model.keras")
RUN_PLOTS = ("curves.png", "confusion.png")


class InterpretError(RuntimeError):
    """A run directory that cannot be interpreted; the message says why."""


# Loading a run ---------------------------------------------------------------


def load_run(run_dir):
    """`(recipe, report, model)` of a finished run directory.

    Raises:
        InterpretError: The directory, or a file a finished run has, is
            missing (each named).
    """
    run_dir = pathlib.Path(run_dir)
    if not run_dir.is_dir():
        raise InterpretError(f"no run directory at {run_dir}")
    missing = [name for name in RUN_FILES if not (run_dir / name).exists()]
    if missing:
        raise InterpretError(
            f"{run_dir} is not a finished fine-tuning run: it has no "
            f"{', '.join(missing)} (a run writes {', '.join(RUN_FILES)}; "
            "`kerazoo finetune RECIPE` makes one)"
        )
    recipe = validate_recipe(
        yaml.safe_load((run_dir / "recipe.yaml").read_text()),
        source=str(run_dir / "recipe.yaml"),
    )
    report = json.loads((run_dir / "report.json").read_text())
    return recipe, report, load_model(run_dir / "model.keras")


def parse_indices(text):
    """`"0,5,7"` -> `[0, 5, 7]` (test-split positions).

    Raises:
        ValueError: Something that is not a comma-separated list of integers
            >= 0.
    """
    try:
        indices = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        indices = []
    if not indices or min(indices) < 0:
        raise ValueError(
            "--images takes test-image positions separated by commas, each >= 0 "
            f"(e.g. 0,5,7). Received: {text!r}"
        )
    return list(dict.fromkeys(indices))


# The test split --------------------------------------------------------------


def predict_split(model, dataset, keep=(), top=16):
    """One pass over an ordered `(images, labels)` dataset.

    Memory is bounded: besides the labels and probabilities, only the images
    at positions `keep` and the `top` highest-loss ones are held.

    Returns:
        A dict: `labels` (n,), `probabilities` (n, classes), `losses` (n,)
        (crossentropy of each image), `images` `{position: float32 image}`
        of the kept and top-loss images, and `top_losses` (positions, highest
        loss first).
    """
    keep = set(keep)
    labels, probabilities, kept, heap = [], [], {}, []
    start = 0
    for x, y in dataset:
        x, y = x.numpy(), y.numpy()
        p = keras.ops.convert_to_numpy(model.predict_on_batch(x)).astype("float32")
        loss = -np.log(np.clip(p[np.arange(len(y)), y], 1e-12, 1.0))
        for i in range(len(y)):
            position = start + i
            if position in keep:
                kept[position] = x[i]
            item = (float(loss[i]), -position, x[i])
            if len(heap) < top:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
        labels.append(y)
        probabilities.append(p)
        start += len(y)
    if not labels:
        raise InterpretError("the test split has no readable image")
    ranked = sorted(heap, key=lambda item: item[:2], reverse=True)
    for _, position, image in ranked:
        kept.setdefault(-position, image)
    probabilities = np.concatenate(probabilities)
    labels = np.concatenate(labels)
    return {
        "labels": labels,
        "probabilities": probabilities,
        "losses": -np.log(
            np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, 1.0)
        ),
        "images": kept,
        "top_losses": [-position for _, position, _ in ranked],
    }


def class_table(labels, predictions, class_names):
    """Per-class `precision`, `recall`, `f1` and `support` (scikit-learn's
    definitions; a class never predicted has precision 0), and their macro
    and support-weighted averages.

    Returns:
        `(rows, averages)`: one dict per class, and `{"macro": ..., "weighted":
        ...}`.
    """
    # scikit-learn is only needed here; its import costs about a second.
    from sklearn.metrics import precision_recall_fscore_support

    k = len(class_names)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=np.arange(k), zero_division=0
    )
    rows = [
        {
            "class": str(class_names[i]),
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i in range(k)
    ]
    averages = {}
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(
            labels, predictions, labels=np.arange(k), average=average, zero_division=0
        )
        averages[average] = {"precision": p, "recall": r, "f1": f}
    averages = {
        name: {key: float(value) for key, value in values.items()}
        for name, values in averages.items()
    }
    return rows, averages


def confused_pairs(matrix, class_names, top=10):
    """The `top` largest off-diagonal cells of a confusion matrix (rows true,
    columns predicted): `[{"true", "predicted", "count", "share"}]`, `share`
    being the fraction of the true class's images."""
    matrix = np.asarray(matrix)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] == 0:
            break
        pairs.append(
            {
                "true": str(class_names[i]),
                "predicted": str(class_names[j]),
                "count": int(off[i, j]),
                "share": float(off[i, j] / max(1, matrix[i].sum())),
            }
        )
    return pairs


# Grad-CAM --------------------------------------------------------------------


def last_feature_map(body):
    """The last 4-D `(batch, height, width, channels)` tensor of a nested body
    model's graph, and the layer that makes it: the body's output when it is
    4-D, else the nearest 4-D tensor found walking back from it.

    Returns:
        `(tensor, layer)`: a symbolic tensor of `body`'s graph (a valid output
        of `keras.Model(body.inputs, ...)`) and its layer.

    Raises:
        InterpretError: The body's graph has no 4-D tensor.
    """
    frontier, seen = list(body.outputs), set()
    while frontier:
        tensor = frontier.pop(0)
        layer = producer(tensor)
        if len(tensor.shape) == 4:
            return tensor, layer
        if layer is None or id(layer) in seen:
            continue
        seen.add(id(layer))
        for inputs in call_inputs(layer):
            frontier.extend(inputs)
    raise InterpretError(
        f"the model's body ({body.name}) has no 4-D feature map (batch, height, "
        "width, channels) to compute Grad-CAM from"
    )


class GradCAM:
    """Grad-CAM (Selvaraju et al.) of a kerazoo classifier, from the last 4-D
    feature map of its nested `body`: the map's channels weighted by the
    spatial mean of the class score's gradient, summed, ReLU, scaled to
    [0, 1] per image.

    The class score is the class's logit (the input of the final softmax)
    minus the mean logit when the model ends in a softmax `Dense` (the softmax
    depends on nothing else), else the model's output itself. The model must be
    a chain (each layer feeding the next), as `kerazoo.finetune.build` and
    `create_model` make them: layers before the body, the body, the head.
    The gradients are the backend's own: `tf.GradientTape`, `jax.grad` or
    torch's autograd. Under JAX and torch the feature map must be the body's
    output (it is for every zoo family); TensorFlow also takes one inside it.

    Args:
        model: A functional `keras.Model` with a layer named `body`.

    Reference:
        [Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
        Localization](https://arxiv.org/abs/1610.02391), ICCV 2017.
    """

    def __init__(self, model):
        names = [layer.name for layer in model.layers]
        if "body" not in names:
            raise InterpretError(
                f"model {model.name} has no layer named 'body' (kerazoo's "
                f"classifiers nest their body under that name); its layers: "
                f"{', '.join(names)}"
            )
        layers = [
            layer
            for layer in model.layers
            if not isinstance(layer, keras.layers.InputLayer)
        ]
        at = [layer.name for layer in layers].index("body")
        self.before, self.after = layers[:at], layers[at + 1 :]
        body = layers[at]
        tensor, self.layer = last_feature_map(body)
        self.shape = tuple(tensor.shape[1:])
        self.at_output = tensor is body.outputs[0]
        backend = keras.backend.backend()
        if backend != "tensorflow" and not self.at_output:
            raise InterpretError(
                f"Grad-CAM from a feature map inside the body ({self.layer.name}) "
                f"takes its gradients with TensorFlow, and the Keras backend is "
                f"{backend}: run it with KERAS_BACKEND=tensorflow (a model.keras "
                "loads there whichever backend trained it)"
            )
        self.body = keras.Model(body.inputs, [tensor, body.outputs[0]])
        last = self.after[-1] if self.after else None
        self.logits_of = None
        activation = getattr(last, "activation", None)
        softmax = getattr(activation, "__name__", "") == "softmax"
        if isinstance(last, keras.layers.Dense) and softmax:
            self.after, self.logits_of = self.after[:-1], last

    def scores(self, images):
        """`(feature maps, class scores, probabilities)` of a batch."""
        x = keras.ops.convert_to_tensor(images, "float32")
        for layer in self.before:
            x = layer(x, training=False)
        maps, x = self.body(x, training=False)
        return (maps, *self._head(x))

    def _head(self, x):
        """`(class scores, probabilities)` from the body's output."""
        for layer in self.after:
            x = layer(x, training=False)
        if self.logits_of is None:
            return x, x
        dense = self.logits_of
        logits = keras.ops.matmul(keras.ops.cast(x, dense.kernel.dtype), dense.kernel)
        if dense.use_bias:
            logits = logits + dense.bias
        # Softmax ignores what every logit shares, and a head trained briefly
        # keeps much of its random start there: the score is the centred logit.
        centred = logits - keras.ops.mean(logits, axis=-1, keepdims=True)
        return centred, keras.ops.softmax(logits)

    @staticmethod
    def _picked(scores, classes):
        """The sum over the batch of each image's score of its class."""
        scores = keras.ops.cast(scores, "float32")
        index = keras.ops.cast(keras.ops.reshape(classes, (-1, 1)), "int32")
        return keras.ops.sum(keras.ops.take_along_axis(scores, index, axis=1))

    def _gradients(self, images, classes):
        """`(maps, d score / d maps, probabilities)`, the backend's way."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            with tf.GradientTape() as tape:
                maps, scores, probabilities = self.scores(images)
                if classes is None:
                    classes = keras.ops.argmax(probabilities, axis=-1)
                picked = self._picked(scores, classes)
            return maps, tape.gradient(picked, maps), probabilities
        # The map is the body's output: the score is a function of it alone.
        maps, scores, probabilities = self.scores(images)
        if classes is None:
            classes = keras.ops.argmax(probabilities, axis=-1)
        classes = keras.ops.convert_to_tensor(classes)
        if backend == "jax":
            import jax  # the backend in use

            grads = jax.grad(lambda m: self._picked(self._head(m)[0], classes))(maps)
            return maps, grads, probabilities
        if backend == "torch":
            leaf = maps.detach().requires_grad_(True)
            self._picked(self._head(leaf)[0], classes).backward()
            return maps.detach(), leaf.grad, probabilities
        raise InterpretError(f"Grad-CAM has no gradients under backend {backend}")

    def __call__(self, images, classes=None):
        """Grad-CAM maps of `images` (float32, 0-255, the model's input size)
        for `classes` (one index per image; default the predicted ones).

        Returns:
            `(maps, probabilities)`: `(n, height, width)` float32 maps in
            [0, 1] at the feature map's resolution, and the model's
            `(n, classes)` probabilities.
        """
        images = np.asarray(images, "float32")
        maps, grads, probabilities = self._gradients(images, classes)
        maps = keras.ops.convert_to_numpy(maps).astype("float32")
        grads = keras.ops.convert_to_numpy(grads).astype("float32")
        weights = grads.mean(axis=(1, 2), keepdims=True)
        cam = np.maximum((weights * maps).sum(axis=-1), 0.0)
        peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
        cam = np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0)
        return cam.astype("float32"), keras.ops.convert_to_numpy(probabilities)


def upsample(cam, size):
    """Maps `(n, h, w)` resized (bilinear) to `size` `(height, width)`."""
    resized = tf.image.resize(np.asarray(cam)[..., None], size, method="bilinear")
    return np.clip(resized.numpy()[..., 0], 0.0, 1.0)


# Figures ---------------------------------------------------------------------


def _pyplot():
    # matplotlib only for the figures; Agg writes files without a display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(n, columns=4):
    columns = max(1, min(columns, n))
    return -(-n // columns), columns


def _shown(image):
    return np.clip(np.asarray(image), 0, 255).astype("uint8")


def plot_top_losses(
    images, labels, probabilities, class_names, path, title="", positions=None
):
    """A grid of images, each titled with its test position, true class,
    predicted class with its probability, and loss."""
    plt = _pyplot()
    rows, columns = _grid(len(images))
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=(2.6 * columns, 3.0 * rows),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    positions = range(len(images)) if positions is None else positions
    for ax, image, label, p, at in zip(
        axes.flat, images, labels, probabilities, positions, strict=False
    ):
        predicted = int(np.argmax(p))
        loss = -np.log(max(float(p[label]), 1e-12))
        ax.imshow(_shown(image))
        ax.set_title(
            f"#{at} true {class_names[label]}\npred {class_names[predicted]} "
            f"({p[predicted]:.2f}), loss {loss:.2f}",
            fontsize=8,
            color="black" if predicted == label else "firebrick",
        )
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_grad_cam(images, cams, positions, labels, probabilities, class_names, path):
    """Each image beside its Grad-CAM overlay (for the predicted class)."""
    plt = _pyplot()
    n = len(images)
    columns = min(2, n)
    rows = -(-n // columns)
    fig, axes = plt.subplots(
        rows,
        2 * columns,
        figsize=(2.4 * 2 * columns, 2.7 * rows),
        squeeze=False,
        layout="constrained",
    )
    for ax in axes.flat:
        ax.axis("off")
    for k, (image, cam) in enumerate(zip(images, cams, strict=True)):
        row, column = divmod(k, columns)
        plain, overlay = axes[row, 2 * column], axes[row, 2 * column + 1]
        p = probabilities[k]
        predicted = int(np.argmax(p))
        plain.imshow(_shown(image))
        plain.set_title(f"#{positions[k]} true {class_names[labels[k]]}", fontsize=8)
        overlay.imshow(_shown(image))
        overlay.imshow(cam, cmap="jet", alpha=0.45, vmin=0, vmax=1)
        overlay.set_title(
            f"Grad-CAM: {class_names[predicted]} ({p[predicted]:.2f})", fontsize=8
        )
    fig.savefig(path, dpi=80)
    plt.close(fig)


# The HTML report -------------------------------------------------------------


def _image_tag(path, alt):
    data = base64.b64encode(pathlib.Path(path).read_bytes()).decode("ascii")
    return (
        f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" '
        'style="max-width:100%">'
    )


def _table(rows, columns, formats=None):
    formats = formats or {}
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            value = row[c]
            text = formats[c].format(value) if c in formats else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
)


def write_html(summary, figures, path):
    """The self-contained report: every figure inlined as base64 PNG."""
    metric = {"precision": "{:.3f}", "recall": "{:.3f}", "f1": "{:.3f}"}
    averages = [
        {"class": f"{name} average", **values, "support": summary["test_images"]}
        for name, values in summary["averages"].items()
    ]
    parts = [
        f"<h1>{html.escape(summary['name'])}: interpretation</h1>",
        f"<p>{html.escape(summary['model'])}; test accuracy "
        f"{summary['test_accuracy']:.4f} on {summary['test_images']} images "
        f"(the run's report: {summary['report_test_accuracy']:.4f}); "
        f"weights of {html.escape(str(summary['final_weights']))}.</p>",
    ]
    for title, (figure, alt) in figures.items():
        if title.startswith("run:"):
            parts += [f"<h2>{html.escape(title[4:])}</h2>", _image_tag(figure, alt)]
    parts += [
        "<h2>Per-class precision, recall and F1 (test split)</h2>",
        _table(
            summary["classes"] + averages,
            ["class", "precision", "recall", "f1", "support"],
            metric,
        ),
        "<h2>Most confused pairs</h2>",
        _table(
            summary["confused_pairs"],
            ["true", "predicted", "count", "share"],
            {"share": "{:.1%}"},
        )
        if summary["confused_pairs"]
        else "<p>No test image is misclassified.</p>",
    ]
    for title, (figure, alt) in figures.items():
        if not title.startswith("run:"):
            parts += [f"<h2>{html.escape(title)}</h2>", _image_tag(figure, alt)]
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(summary['name'])}: interpretation</title>"
        f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>"
    )
    pathlib.Path(path).write_text(page, encoding="utf-8")


# The command -----------------------------------------------------------------


def interpret(run_dir, *, images=None, top=16, log=print):
    """Interprets a finished run on its test split (see the module docstring).

    Args:
        run_dir: The run's output directory.
        images: Test-split positions to draw Grad-CAM for (default: the `top`
            highest-loss images, at most 8).
        top: Highest-loss images in the grid.
        log: Where progress lines go.

    Returns:
        The summary written to `interpret/interpret.json`, with `files`
        naming each file written.

    Raises:
        InterpretError: Not a finished run, a position outside the test
            split, or data that no longer match the run's classes.
    """
    run_dir = pathlib.Path(run_dir)
    recipe, report, model = load_run(run_dir)
    log(f"run: {run_dir} ({recipe.name}, {recipe.model.name}), model.keras loaded")
    data = load_recipe_data(recipe)
    names = [str(name) for name in data.class_names]
    if names != [str(name) for name in report["data"]["classes"]]:
        raise InterpretError(
            f"the data {data.uri} now have the classes {names[:10]}, the run was "
            f"trained on {report['data']['classes'][:10]}"
        )
    n_test = data.sizes["test"]
    if images is not None:
        outside = [i for i in images if i >= n_test]
        if outside:
            raise InterpretError(
                f"--images {','.join(map(str, outside))}: the test split has "
                f"{n_test} images (positions 0 to {n_test - 1})"
            )
    log(f"test split: {n_test:,} images of {len(names)} classes; predicting")
    pipelines = Pipelines(
        data, recipe.model.image_size, cache="none", deterministic=True, log=log
    )
    try:
        test = pipelines.dataset("test", 64, ordered=True)
        result = predict_split(model, test, keep=images or (), top=top)
    finally:
        pipelines.close()
    labels, probabilities = result["labels"], result["probabilities"]
    predictions = np.argmax(probabilities, axis=-1)
    if images is not None:
        # A broken file dropped from the split shortens it.
        outside = [i for i in images if i not in result["images"]]
        if outside:
            raise InterpretError(
                f"--images {','.join(map(str, outside))}: only {len(labels)} test "
                "images were readable"
            )
    accuracy = float(np.mean(labels == predictions))
    rows, averages = class_table(labels, predictions, names)
    matrix = confusion_matrix(labels, predictions, len(names))
    pairs = confused_pairs(matrix, names)
    log(
        f"test accuracy {accuracy:.4f}; macro F1 {averages['macro']['f1']:.4f}; "
        f"{int(matrix.sum() - np.trace(matrix))} misclassified"
    )
    out = run_dir / "interpret"
    out.mkdir(exist_ok=True)
    files = {}

    worst = result["top_losses"]
    files["top_losses"] = out / "top_losses.png"
    plot_top_losses(
        [result["images"][i] for i in worst],
        labels[worst],
        probabilities[worst],
        names,
        files["top_losses"],
        title=f"{recipe.name}: the {len(worst)} test images of highest loss",
        positions=worst,
    )
    log(f"wrote {files['top_losses']}")

    chosen = list(images) if images is not None else worst[:8]
    cam = GradCAM(model)
    log(f"Grad-CAM of {len(chosen)} images from body/{cam.layer.name} {cam.shape}")
    batch = np.stack([result["images"][i] for i in chosen])
    maps, cam_probabilities = cam(batch)
    files["grad_cam"] = out / "grad_cam.png"
    plot_grad_cam(
        batch,
        upsample(maps, batch.shape[1:3]),
        chosen,
        labels[chosen],
        cam_probabilities,
        names,
        files["grad_cam"],
    )
    log(f"wrote {files['grad_cam']}")

    summary = {
        "run": str(run_dir),
        "name": recipe.name,
        "model": f"{recipe.model.name} ({recipe.model.weights or 'random'} weights)",
        "test_images": len(labels),
        "test_accuracy": accuracy,
        "report_test_accuracy": float(report["test_accuracy"]),
        "final_weights": report.get("final_weights"),
        "classes": rows,
        "averages": averages,
        "confused_pairs": pairs,
        "top_losses": [
            {
                "position": int(i),
                "true": names[labels[i]],
                "predicted": names[predictions[i]],
                "probability": float(probabilities[i, predictions[i]]),
                "loss": float(result["losses"][i]),
            }
            for i in worst
        ],
        "grad_cam": {
            "layer": f"body/{cam.layer.name}",
            "shape": list(cam.shape),
            "images": [int(i) for i in chosen],
        },
    }
    figures = {
        f"run: {name}": (run_dir / name, name)
        for name in RUN_PLOTS
        if (run_dir / name).exists()
    }
    figures["Test images of highest loss"] = (files["top_losses"], "top losses")
    figures["Grad-CAM"] = (files["grad_cam"], "Grad-CAM overlays")
    files["html"] = out / "report.html"
    write_html(summary, figures, files["html"])
    log(f"wrote {files['html']}")
    files["json"] = out / "interpret.json"
    summary["files"] = {key: str(path) for key, path in files.items()}
    files["json"].write_text(json.dumps(summary, indent=2))
    log(f"wrote {files['json']}")
    return summary
