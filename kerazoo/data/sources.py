"""Image datasets named by URI.

- `digits`: scikit-learn's handwritten digits (embedded, no download), fixed
  stratified train/validation/test splits. Options: `shots=N` (N labelled training
  images per class), `invert=true` (dark ink on white, like a scanned page),
  `validation=F`, `test=F`.
- `tfds:NAME`: any tensorflow-datasets dataset with `(image, label)` supervised
  keys, streamed from its record files. Options: `train=`, `validation=`,
  `test=` split specs (e.g. `train[:80%]`); by default the dataset's own
  splits, with validation (and test) carved from `train` when it has none.
- `folder:PATH`: one sub-folder per class of image files (JPEG, PNG, BMP, GIF),
  split per class by `validation=F` and `test=F` (defaults 0.15 each) with the
  recipe's seed. When PATH holds `train/` (and `val/` or `validation/`, and
  `test/`) folders of class folders, those splits are taken as they are (the
  ImageNet layout); a missing validation or test split is carved from `train`.
- `csv:FILE`: a CSV file with `path` and `label` columns (paths relative to the
  file's folder, labels class names) and an optional `split` column (`train`,
  `val` or `validation`, `test`); without it the rows are split like a folder's.

Listing does no decoding: files are listed by name and extension (`scan`) and
every split is a list of files, decoded while a pipeline streams them; a file
that cannot be decoded is skipped there and named in the run's report.

Example:

>>> data = load_data("digits?shots=5")
>>> data.sizes["train"], data.num_classes
(50, 10)
"""

import csv
import dataclasses
import os
import pathlib
import urllib.parse

import numpy as np

import kerazoo.data.scan as scan
from kerazoo.data.split import ArraySplit
from kerazoo.data.split import FileSplit
from kerazoo.data.split import StreamSplit

SCHEMES = ("digits", "tfds", "folder", "csv")
IMAGE_SUFFIXES = scan.IMAGE_SUFFIXES
SPLITS = ("train", "validation", "test")
_SPLIT_NAMES = {
    "train": "train",
    "val": "validation",
    "validation": "validation",
    "test": "test",
}
_USAGE = (
    "'digits[?shots=N]', 'tfds:NAME[?train=..&validation=..&test=..]', "
    "'folder:PATH[?validation=F&test=F]', 'csv:FILE[?validation=F&test=F]'"
)


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
            f"unknown data source {scheme!r} in {uri!r}; allowed: {_USAGE}"
        )
    options = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
    allowed = {
        "digits": ("shots", "invert", "validation", "test"),
        "tfds": ("train", "validation", "test"),
        "folder": ("validation", "test"),
        "csv": ("validation", "test"),
    }[scheme]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown option(s) {', '.join(unknown)} in {uri!r}; {scheme} takes "
            f"{', '.join(allowed)}"
        )
    if scheme in ("tfds", "folder", "csv") and not target:
        what = {"tfds": "dataset name", "folder": "path", "csv": "file"}[scheme]
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
        splits: `{"train", "validation", "test"}` -> `kerazoo.data.split.Split`
            (files, arrays or a tfds stream; read through `image_pipeline`).
        channels: 1 (grayscale, made RGB by the pipeline) or 3.
        counts: Images per class in each split, where known before reading.
        shard: `(index, count)` when this is one shard of the data.
    """

    uri: str
    class_names: list
    splits: dict
    channels: int = 3
    counts: dict = dataclasses.field(default_factory=dict)
    shard: tuple = (0, 1)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def sizes(self):
        return {name: split.size for name, split in self.splits.items()}

    def summary(self):
        sizes = ", ".join(f"{k} {v:,}" for k, v in self.sizes.items())
        text = f"{self.uri}: {self.num_classes} classes; {sizes}"
        if self.shard[1] > 1:
            text += f" (shard {self.shard[0]} of {self.shard[1]})"
        return text

    def class_counts(self):
        """One line per split: images per class (known before decoding)."""
        lines = []
        for name, counts in self.counts.items():
            pairs = ", ".join(
                f"{c} {n:,}" for c, n in zip(self.class_names, counts, strict=True)
            )
            lines.append(f"{name}: {pairs}")
        return lines

    def sharded(self, index, count):
        """Shard `index` of `count`: every split's images `index`, `index +
        count`, ... (chosen by file, before anything is decoded), so that
        `count` processes together read every image once."""
        if not 0 <= index < count:
            raise ValueError(
                f"shard {index} of {count}: the index must be in [0, {count})"
            )
        if count == 1:
            return self
        splits = {k: s.shard(index, count) for k, s in self.splits.items()}
        counts = {
            k: np.bincount(s.labels, minlength=self.num_classes).tolist()
            for k, s in splits.items()
            if s.labels is not None
        }
        return dataclasses.replace(
            self, splits=splits, counts=counts, shard=(index, count)
        )

    def dataset(self, split):
        """Unbatched `(uint8 image, int32 label)` examples of a split at their
        own size, in order, broken files left out (for looking at the data;
        training goes through `image_pipeline`)."""
        import tensorflow as tf

        source = self.splits[split]
        if not source.random_access:
            return source.stream()
        ds = tf.data.Dataset.range(source.size).map(
            lambda i: source.element(i), num_parallel_calls=tf.data.AUTOTUNE
        )
        return ds.filter(lambda x, y, status: status == 1).map(lambda x, y, s: (x, y))


def load_data(uri, seed=0, data_dir=None, download=True):
    """Opens the dataset a URI names (see the module docstring)."""
    scheme, target, options = parse_uri(uri)
    if scheme == "digits":
        return _digits(uri, options, seed)
    if scheme == "tfds":
        return _tfds(uri, target, options, data_dir, download)
    if scheme == "csv":
        return _csv(uri, target, options, seed)
    return _folder(uri, target, options, seed)


def _with_counts(data):
    data.counts = {
        k: np.bincount(s.labels, minlength=data.num_classes).tolist()
        for k, s in data.splits.items()
        if s.labels is not None
    }
    return data


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
    splits = {k: ArraySplit(x, y) for k, (x, y) in arrays.items()}
    return _with_counts(ImageData(uri, [str(i) for i in range(10)], splits, 1))


def _tfds(uri, name, options, data_dir, download):
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
    splits = {}
    for split, spec in specs.items():
        try:
            size = info.splits[spec].num_examples
        except Exception:  # unknown split sizes (e.g. mocked data): count once
            ds = builder.as_dataset(split=spec, shuffle_files=False)
            size = int(ds.reduce(0, lambda n, _: n + 1))
        splits[split] = StreamSplit(builder, spec, size, channels)
    return ImageData(uri, class_names, splits, channels)


def _tfds_splits(available, options):
    specs = {k: options[k] for k in SPLITS if k in options}
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


def _carve(entries, labels, fractions, rng):
    """Splits `(entries, labels)` per class: `fractions` maps split name to
    the share of each class it takes; the rest stays in the first split named
    `"train"`. Returns `{split: (entries, labels)}` in file order."""
    labels = np.asarray(labels)
    picked = {name: [] for name in ("train", *fractions)}
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        order = where[rng.permutation(len(where))]
        start = 0
        for name, fraction in fractions.items():
            n = round(fraction * len(where))
            picked[name].extend(order[start : start + n])
            start += n
        picked["train"].extend(order[start:])
    return {
        name: ([entries[i] for i in sorted(index)], labels[sorted(index)])
        for name, index in picked.items()
    }


def _check_not_empty(uri, splits):
    for name, split in splits.items():
        if not split.size:
            raise ValueError(
                f"{uri!r}: the {name} split is empty; add images or change the "
                "fractions"
            )


def _class_files(uri, root, classes):
    """`(entries, labels)` of the image files under each class folder."""
    entries, labels = [], []
    for label, name in enumerate(classes):
        found = scan.walk_images(root / name)
        if not found:
            raise ValueError(
                f"{uri!r}: class {name!r} ({root / name}) has no image file "
                f"({', '.join(IMAGE_SUFFIXES)})"
            )
        entries.extend(found)
        labels.extend([label] * len(found))
    return entries, labels


def _folder(uri, target, options, seed):
    root = pathlib.Path(target).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{uri!r}: no folder at {root}")
    rng = np.random.default_rng(seed)
    fractions = {
        "validation": float(options.get("validation", 0.15)),
        "test": float(options.get("test", 0.15)),
    }
    folders = scan.subfolders(root)
    given = {}
    for name in folders:
        split = _SPLIT_NAMES.get(name)
        if split is not None:
            if split in given:
                raise ValueError(
                    f"{uri!r}: both {given[split].name}/ and {name}/ are a "
                    f"{split} split; keep one"
                )
            given[split] = root / name
    if "train" in given:
        return _split_folders(uri, given, fractions, rng)
    classes = folders
    if len(classes) < 2:
        raise ValueError(
            f"{uri!r}: needs one sub-folder per class (at least 2), or train/ "
            f"(and val/, test/) folders of class folders; found {len(classes)} "
            f"in {root}"
        )
    entries, labels = _class_files(uri, root, classes)
    parts = _carve(entries, labels, fractions, rng)
    splits = {k: FileSplit(*parts[k]) for k in SPLITS}
    _check_not_empty(uri, splits)
    return _with_counts(ImageData(uri, classes, splits, 3))


def _split_folders(uri, given, fractions, rng):
    classes = scan.subfolders(given["train"])
    if len(classes) < 2:
        raise ValueError(
            f"{uri!r}: {given['train']} needs one sub-folder per class (at least 2)"
        )
    for folder in given.values():
        theirs = scan.subfolders(folder)
        if theirs != classes:
            missing = sorted(set(classes) - set(theirs))
            extra = sorted(set(theirs) - set(classes))
            detail = "; ".join(
                text
                for text in (
                    f"missing {', '.join(missing)}" if missing else "",
                    f"not in train/: {', '.join(extra)}" if extra else "",
                )
                if text
            )
            raise ValueError(
                f"{uri!r}: the classes of {folder.name}/ differ from train/'s "
                f"({detail})"
            )
    files = {k: _class_files(uri, folder, classes) for k, folder in given.items()}
    carve = {k: v for k, v in fractions.items() if k not in given}
    parts = _carve(*files["train"], carve, rng) if carve else {"train": files["train"]}
    parts.update({k: v for k, v in files.items() if k != "train"})
    splits = {k: FileSplit(*parts[k]) for k in SPLITS}
    _check_not_empty(uri, splits)
    return _with_counts(ImageData(uri, classes, splits, 3))


def _csv(uri, target, options, seed):
    path = pathlib.Path(target).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{uri!r}: no file at {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("path", "label") if c not in columns]
        if missing:
            raise ValueError(
                f"{uri!r}: needs columns path and label (and optionally split); "
                f"its header is {', '.join(columns) or 'empty'}"
            )
        rows = list(reader)
    if not rows:
        raise ValueError(f"{uri!r}: no rows")
    has_split = "split" in columns
    names = sorted({r["label"] for r in rows})
    if all(n.lstrip("-").isdigit() for n in names):
        names = sorted(names, key=int)
    if len(names) < 2:
        raise ValueError(f"{uri!r}: needs at least 2 classes, found {names}")
    index = {n: i for i, n in enumerate(names)}
    by_split = {k: ([], []) for k in SPLITS}
    for line, row in enumerate(rows, start=2):
        where = row["split"].strip().lower() if has_split else "train"
        split = _SPLIT_NAMES.get(where)
        if split is None:
            raise ValueError(
                f"{uri!r} line {line}: split {row['split']!r}; allowed: train, val, "
                "validation, test"
            )
        file = path.parent / row["path"]
        by_split[split][0].append(os.fspath(file))
        by_split[split][1].append(index[row["label"]])
    parts = {}
    for split, (paths, labels) in by_split.items():
        if paths:
            parts[split] = (scan.stat_files(paths), np.asarray(labels))
    carve = {
        k: float(options.get(k, 0.15)) for k in ("validation", "test") if k not in parts
    }
    if "train" not in parts:
        raise ValueError(f"{uri!r}: no row of the train split")
    if carve:
        parts.update(_carve(*parts["train"], carve, np.random.default_rng(seed)))
    splits = {k: FileSplit(*parts[k]) for k in SPLITS}
    _check_not_empty(uri, splits)
    return _with_counts(ImageData(uri, names, splits, 3))
