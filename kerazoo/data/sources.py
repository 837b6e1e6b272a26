"""Image datasets named by URI, as `tf.data` pipelines.

- `digits`: scikit-learn's handwritten digits (embedded, no download), fixed
  stratified train/validation/test splits. Options: `shots=N` (N labelled training
  images per class), `invert=true` (dark ink on white, like a scanned page),
  `validation=F`, `test=F`.
- `tfds:NAME`: any tensorflow-datasets dataset with `(image, label)` supervised
  keys. Options: `train=`, `validation=`, `test=` split specs (e.g.
  `train[:80%]`); by default the dataset's own splits, with validation (and test)
  carved from `train` when it has none.
- `folder:PATH`: one sub-folder per class of JPEG/PNG files, split per class by
  `validation=F` and `test=F` (defaults 0.15 each) with the recipe's seed.
  Unreadable files are skipped and listed in `ImageData.skipped`; a class with no
  readable image is an error.

Example:

>>> data = load_data("digits?shots=5")
>>> data.sizes["train"], data.num_classes
(50, 10)
"""

import dataclasses
import pathlib
import urllib.parse

import numpy as np

SCHEMES = ("digits", "tfds", "folder")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def parse_uri(uri):
    """Splits a data URI into `(scheme, target, options)`; checks the scheme and
    the option names."""
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"a data URI is a non-empty string, got {uri!r}")
    head, _, query = uri.partition("?")
    scheme, sep, target = head.partition(":")
    if not sep:
        scheme, target = head, ""
    if scheme not in SCHEMES:
        raise ValueError(
            f"unknown data source {scheme!r} in {uri!r}; allowed: "
            "'digits[?shots=N]', 'tfds:NAME[?train=..&validation=..&test=..]', "
            "'folder:PATH[?validation=F&test=F]'"
        )
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    allowed = {
        "digits": ("shots", "invert", "validation", "test"),
        "tfds": ("train", "validation", "test"),
        "folder": ("validation", "test"),
    }[scheme]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} in {uri!r}; {scheme} takes "
            f"{', '.join(allowed)}"
        )
    if scheme in ("tfds", "folder") and not target:
        what = "dataset name" if scheme == "tfds" else "path"
        raise ValueError(f"{uri!r} needs a {what}")
    for key in ("validation", "test"):
        if scheme != "tfds" and key in options:
            value = _float(options[key], key, uri)
            if not 0 < value < 1:
                raise ValueError(f"{key}={value} in {uri!r} must be in (0, 1)")
    if "shots" in options:
        try:
            shots = int(options["shots"])
        except ValueError:
            shots = 0
        if shots < 1:
            raise ValueError(
                f"shots={options['shots']!r} in {uri!r} must be a positive integer"
            )
    if "invert" in options and options["invert"] not in ("true", "false"):
        raise ValueError(f"invert={options['invert']!r} in {uri!r}: true or false")
    return scheme, target, options


def _float(value, key, uri):
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{key}={value!r} in {uri!r} must be a number") from None


@dataclasses.dataclass
class ImageData:
    """A dataset split three ways.

    Attributes:
        uri: Where it came from.
        class_names: One name per label.
        splits: `{"train", "validation", "test"}` -> unbatched `tf.data.Dataset`
            of `(uint8 image (H, W, C), int32 label)`.
        sizes: Images per split.
        channels: 1 (grayscale, made RGB by the pipeline) or 3.
        skipped: Files that could not be read (folder sources).
    """

    uri: str
    class_names: list
    splits: dict
    sizes: dict
    channels: int = 3
    skipped: list = dataclasses.field(default_factory=list)

    @property
    def num_classes(self):
        return len(self.class_names)

    def summary(self):
        sizes = ", ".join(f"{k} {v}" for k, v in self.sizes.items())
        text = f"{self.uri}: {self.num_classes} classes; {sizes}"
        if self.skipped:
            text += f"; {len(self.skipped)} unreadable files skipped"
        return text


def load_data(uri, seed=0, data_dir=None, download=True):
    """Opens the dataset a URI names (see the module docstring)."""
    scheme, target, options = parse_uri(uri)
    if scheme == "digits":
        return _digits(uri, options, seed)
    if scheme == "tfds":
        return _tfds(uri, target, options, data_dir, download)
    return _folder(uri, target, options, seed)


def _arrays(uri, class_names, arrays, channels):
    import tensorflow as tf

    splits = {
        name: tf.data.Dataset.from_tensor_slices((x, y.astype("int32")))
        for name, (x, y) in arrays.items()
    }
    sizes = {name: len(y) for name, (_, y) in arrays.items()}
    return ImageData(uri, class_names, splits, sizes, channels)


def _digits(uri, options, seed):
    from kerazoo.data.digits import few_shot_indices
    from kerazoo.data.digits import load_digits_splits

    arrays = load_digits_splits(
        seed=seed,
        validation_fraction=float(options.get("validation", 0.15)),
        test_fraction=float(options.get("test", 0.15)),
    )
    if options.get("invert") == "true":
        arrays = {k: (255 - x, y) for k, (x, y) in arrays.items()}
    if "shots" in options:
        x, y = arrays["train"]
        try:
            keep = few_shot_indices(y, int(options["shots"]), seed)
        except ValueError as error:
            raise ValueError(f"{uri!r}: {error} in its training split") from None
        arrays["train"] = (x[keep], y[keep])
    return _arrays(uri, [str(i) for i in range(10)], arrays, channels=1)


def _tfds(uri, name, options, data_dir, download):
    import tensorflow as tf
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as error:  # tfds raises its own DatasetNotFoundError
        raise ValueError(f"{uri!r}: {error}") from None
    if download:
        builder.download_and_prepare()
    elif not builder.is_prepared():
        raise FileNotFoundError(
            f"{uri!r}: the dataset is not in {builder.data_dir} and data.download "
            "is false"
        )
    info = builder.info
    if info.supervised_keys is None:
        raise ValueError(f"{uri!r} has no (image, label) supervised keys")
    image_key, label_key = info.supervised_keys[:2]
    label = info.features[label_key]
    class_names = list(getattr(label, "names", None) or [])
    if not class_names:
        raise ValueError(f"{uri!r}: its label feature has no class names")
    specs = _tfds_splits(set(info.splits.keys()), options)
    channels = info.features[image_key].shape[-1] or 3
    splits, sizes = {}, {}
    for split, spec in specs.items():
        ds = builder.as_dataset(split=spec, as_supervised=True, shuffle_files=False)
        splits[split] = ds.map(
            lambda x, y: (x, tf.cast(y, "int32")), num_parallel_calls=tf.data.AUTOTUNE
        )
        try:
            sizes[split] = info.splits[spec].num_examples
        except Exception:  # unknown split sizes (e.g. mocked data): count once
            sizes[split] = int(ds.reduce(0, lambda n, _: n + 1))
    return ImageData(uri, class_names, splits, sizes, channels)


def _tfds_splits(available, options):
    specs = {}
    if "train" in options:
        specs["train"] = options["train"]
    if "validation" in options:
        specs["validation"] = options["validation"]
    if "test" in options:
        specs["test"] = options["test"]
    if len(specs) == 3:
        return specs
    has_test = "test" in available
    has_val = "validation" in available
    if has_test and has_val:
        defaults = {"train": "train", "validation": "validation", "test": "test"}
    elif has_test:
        defaults = {"train": "train[:90%]", "validation": "train[90%:]", "test": "test"}
    elif has_val:
        defaults = {
            "train": "train[:90%]",
            "validation": "validation",
            "test": "train[90%:]",
        }
    else:
        defaults = {
            "train": "train[:80%]",
            "validation": "train[80%:90%]",
            "test": "train[90%:]",
        }
    return {**defaults, **specs}


def _readable(path):
    from PIL import Image

    try:
        if path.stat().st_size == 0:
            return False
        with Image.open(path) as image:
            image.verify()
        return True
    except Exception:
        return False


def _folder(uri, target, options, seed):
    import tensorflow as tf

    root = pathlib.Path(target).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{uri!r}: no folder at {root}")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise ValueError(
            f"{uri!r}: needs one sub-folder per class (at least 2); found "
            f"{len(classes)} in {root}"
        )
    validation = float(options.get("validation", 0.15))
    test = float(options.get("test", 0.15))
    rng = np.random.default_rng(seed)
    files = {"train": [], "validation": [], "test": []}
    skipped = []
    for label, name in enumerate(classes):
        paths = sorted(
            p
            for p in (root / name).rglob("*")
            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        good = []
        for p in paths:
            (good if _readable(p) else skipped).append(p)
        if not good:
            raise ValueError(
                f"{uri!r}: class {name!r} ({root / name}) has no readable JPEG or "
                f"PNG image" + (f" ({len(paths)} unreadable)" if paths else "")
            )
        order = rng.permutation(len(good))
        n_test = round(test * len(good))
        n_val = round(validation * len(good))
        parts = {
            "test": order[:n_test],
            "validation": order[n_test : n_test + n_val],
            "train": order[n_test + n_val :],
        }
        for split, index in parts.items():
            files[split].extend((str(good[i]), label) for i in sorted(index))
    for split, items in files.items():
        if not items:
            raise ValueError(
                f"{uri!r}: the {split} split is empty; add images or change the "
                "fractions"
            )

    def decode(path, label):
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
        image.set_shape([None, None, 3])
        return image, label

    splits, sizes = {}, {}
    for split, items in files.items():
        paths = [p for p, _ in items]
        labels = np.asarray([y for _, y in items], "int32")
        splits[split] = tf.data.Dataset.from_tensor_slices((paths, labels)).map(
            decode, num_parallel_calls=tf.data.AUTOTUNE
        )
        sizes[split] = len(items)
    return ImageData(uri, classes, splits, sizes, 3, [str(p) for p in skipped])
