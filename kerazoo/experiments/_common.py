"""What every experiment shares: its settings (a YAML recipe shipped in the
package, `kerazoo/experiments/configs/NAME.yaml`, with a `quick:` section), its
run directory, its numbers (JSON and CSV), its figures, and the verdicts
computed from the numbers."""

import csv
import dataclasses
import json
import time
from importlib import resources
from pathlib import Path

import numpy as np

from kerazoo._checks import did_you_mean
from kerazoo._checks import parse_overrides

# The experiments' recipes, package data: found where the package is installed,
# not in a source checkout.
RECIPES = resources.files("kerazoo.experiments") / "configs"


class ExperimentError(ValueError):
    """A bad experiment name, recipe or setting."""


@dataclasses.dataclass
class Verdict:
    """One claim of the lecture, and whether this run's numbers bear it out."""

    claim: str
    held: bool
    evidence: str

    def format(self):
        mark = "HELD" if self.held else "NOT HELD"
        return f"[{mark}] {self.claim}: {self.evidence}"


# Lists that may be emptied to skip a part of an experiment.
MAY_BE_EMPTY = {"near_shots", "far_shots", "dense_depths", "train_activations"}


def _check_type(key, value, default):
    """A setting must have its default's type (ints may stand for floats)."""
    if isinstance(default, bool) or default is None:
        ok = isinstance(value, bool) if isinstance(default, bool) else True
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, list):
        ok = isinstance(value, list) and (len(value) > 0 or key in MAY_BE_EMPTY)
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ExperimentError(
            f"`{key}` must be {type(default).__name__} like its default "
            f"{default!r}. Received: {key}={value!r}"
        )
    return float(value) if isinstance(default, float) else value


def merge_settings(defaults, overrides, where):
    """`defaults` updated by `overrides`, refusing unknown keys (with the close
    ones) and values of another type."""
    settings = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            hint = did_you_mean(key, defaults)
            raise ExperimentError(
                f"Unknown setting {key!r} in {where}.{hint} "
                f"Settings: {', '.join(sorted(defaults))}"
            )
        settings[key] = _check_type(key, value, defaults[key])
    return settings


def parse_set(pairs):
    """`--set key=value` pairs as a dict (the settings are flat), values read
    as YAML (`3`, `0.1`, `[1, 2]`), by the recipes' parser."""
    try:
        return {".".join(path): value for path, value in parse_overrides(pairs)}
    except ValueError as error:
        raise ExperimentError(str(error)) from None


class Run:
    """An experiment's run directory and what goes into it."""

    def __init__(self, name, output_dir, settings, quick, verbose=1):
        self.name = name
        self.dir = Path(output_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.settings = settings
        self.quick = quick
        self.verbose = verbose
        self.numbers = {}
        self.verdicts = []
        self.figures = []
        self.start = time.perf_counter()

    def log(self, text):
        if self.verbose:
            print(text, flush=True)

    def record(self, key, value):
        self.numbers[key] = value
        return value

    def write_csv(self, filename, rows):
        path = self.dir / filename
        fields = list(dict.fromkeys(k for row in rows for k in row))
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fields)
            writer.writeheader()
            writer.writerows(rows)
        return path

    def figure(self, fig, filename):
        path = self.dir / filename
        fig.savefig(path, dpi=80, bbox_inches="tight")
        import matplotlib.pyplot as plt

        plt.close(fig)
        self.figures.append(filename)
        self.log(f"  wrote {path}")
        return path

    def verdict(self, claim, held, evidence):
        verdict = Verdict(claim, bool(held), evidence)
        self.verdicts.append(verdict)
        return verdict

    def finish(self):
        seconds = time.perf_counter() - self.start
        result = {
            "experiment": self.name,
            "quick": self.quick,
            "seconds": round(seconds, 1),
            "settings": self.settings,
            "numbers": _plain(self.numbers),
            "verdicts": [dataclasses.asdict(v) for v in self.verdicts],
            "figures": self.figures,
        }
        with open(self.dir / "results.json", "w") as f:
            json.dump(result, f, indent=2)
        self.log(f"\n{self.name}: {len(self.verdicts)} claims, {seconds:.0f} s")
        for v in self.verdicts:
            self.log("  " + v.format())
        self.log(f"Numbers: {self.dir / 'results.json'}")
        return result


def _plain(value):
    """JSON-ready copies of numpy numbers and arrays."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    return value


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_per_step():
    """A Keras callback keeping every step's training loss (`losses`, recovered
    from the epoch's running mean that Keras reports) and the seconds since
    training began at the end of each epoch (`epoch_seconds`)."""
    import keras

    class LossPerStep(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.losses = []
            self.epoch_seconds = []

        def on_train_begin(self, logs=None):
            self._start = time.perf_counter()

        def on_epoch_begin(self, epoch, logs=None):
            self._mean = 0.0

        def on_train_batch_end(self, batch, logs=None):
            mean = float(logs["loss"])
            self.losses.append((batch + 1) * mean - batch * self._mean)
            self._mean = mean

        def on_epoch_end(self, epoch, logs=None):
            self.epoch_seconds.append(time.perf_counter() - self._start)

    return LossPerStep()


def fit_and_test(
    model,
    optimizer,
    train,
    *,
    batch_size,
    epochs,
    validation=None,
    test=None,
    callbacks=(),
):
    """Compiles `model` (logits, sparse cross-entropy, accuracy) with
    `optimizer`, trains it on `train = (x, y)` and returns its `history` (Keras's
    per-epoch dict), the training `seconds` and, given `test`, `test_accuracy`."""
    import keras

    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        *train,
        validation_data=validation,
        batch_size=batch_size,
        epochs=epochs,
        verbose=0,
        callbacks=list(callbacks),
    )
    out = {"history": history.history, "seconds": time.perf_counter() - start}
    if test is not None:
        _, accuracy = model.evaluate(*test, batch_size=256, verbose=0)
        out["test_accuracy"] = float(accuracy)
    return out


def digits(seed=0, rgb=False, size=None, invert=False, classes=None):
    """The embedded digits as float arrays: `{"train", "validation", "test"}`
    -> `(x, y)`; 0-1 grayscale by default, or 0-255 RGB at `size` for the
    zoo's models (which rescale inside)."""
    from kerazoo.data.digits import load_digits_splits

    out = {}
    for split, (x, y) in load_digits_splits(seed=seed).items():
        if classes is not None:
            keep = np.isin(y, classes)
            x, y = x[keep], y[keep] - min(classes)
        x = x.astype("float32")
        if invert:
            x = 255.0 - x
        if rgb:
            x = np.repeat(x, 3, axis=-1)
            if size is not None and size != x.shape[1]:
                import keras

                x = keras.ops.convert_to_numpy(
                    keras.ops.image.resize(x, (size, size), interpolation="bilinear")
                )
        else:
            x = x / 255.0
        out[split] = (x, y.astype("int32"))
    return out


def shots(x, y, n, seed=0):
    """`n` examples of each class (all of them when `n` is None)."""
    if n is None:
        return x, y
    from kerazoo.data.digits import few_shot_indices

    keep = few_shot_indices(y, n, seed)
    return x[keep], y[keep]


def ratio_text(a, b):
    return f"{a / b:.2f}x" if b else "n/a"


def recipe_path(name_or_path):
    """The recipe file of an experiment: a `.yaml` / `.yml` path as given, or
    the package's recipe of the experiment named."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ExperimentError(f"No experiment recipe at {path}")
        return path
    path = RECIPES / f"{name_or_path}.yaml"
    if not path.is_file():
        raise ExperimentError(
            f"No recipe for experiment {name_or_path!r} at {path}; pass the path of "
            "its YAML file instead."
        )
    return path
