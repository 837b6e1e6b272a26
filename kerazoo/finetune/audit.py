"""`kerazoo audit RECIPE`: duplicates, leakage, suspected label errors and class
balance of a recipe's data, found from the body's features.

Over the train, validation and test splits together:

- **Exact duplicates**: images whose decoded pixels at the model's input size
  are identical (a BLAKE2b digest of each), in groups; a group whose labels
  differ is `conflicting`.
- **Near duplicates**: pairs of images whose features have a cosine similarity
  of at least `threshold`. A pair in two splits is leakage: the model has seen
  a test (or validation) image in training, and its score is too good. The
  features are standardised (mean 0 and variance 1 in each dimension, over all
  the images) before the cosine: pooled ReLU features are all positive, and
  their raw cosine similarities all near 1.
- **Label issues**: out-of-fold predicted probabilities of a linear probe
  (scikit-learn's `LogisticRegression` on the standardised features, with
  `cross_val_predict` over stratified folds), ranked by cleanlab's
  `find_label_issues` (confident learning, by self-confidence).
- **Class balance**: images per class in each split, the largest class over
  the smallest, and the distance of each split's class shares from train's.

The features are stage 1's (`engine.extract_features`): computed once into
the content-keyed cache, and reused by `kerazoo finetune`, `lr-find` and the
next audit of the same data and body. They are read memory-mapped; the
similarity is computed block against block (`similar_pairs`) keeping only the
pairs above the threshold, so its memory is `chunk_size**2` floats, never
`N x N`. The probe holds the standardised features in memory (N x dim floats).

Writes `audit.json` and one PNG per finding (`exact_duplicates.png`,
`near_duplicates.png`, `label_issues.png`, `class_balance.png`).

Reference:
    [Confident Learning: Estimating Uncertainty in Dataset Labels](
    https://arxiv.org/abs/1911.00068), C. Northcutt, L. Jiang, I. Chuang,
    JAIR 2021.

Example:

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [0.99, 0.01], [0.0, 1.0]], "float32")
>>> pairs, similarities, truncated = similar_pairs(x, 0.99, chunk_size=2)
>>> pairs.tolist(), truncated
([[0, 1]], False)
"""

import hashlib
import json
import math
import pathlib
import time
import warnings

import keras
import numpy as np

import kerazoo.finetune.engine as engine
from kerazoo._files import replace_text
from kerazoo.data.pipeline import resize_uint8

THRESHOLD = 0.98
CHUNK_SIZE = 2048
# Pairs kept at most (the most similar): a threshold too low for the data
# would otherwise fill the memory with pairs.
MAX_PAIRS = 100_000
FOLDS = 5
SPLITS = ("train", "validation", "test")
_DIGEST_VERSION = "blake2b-128 resize-v1"


class AuditError(RuntimeError):
    """An audit that cannot run; the message says why."""


def audit_dir(recipe):
    """Where `kerazoo audit` writes by default: `OUTPUT_DIR/audit` when
    OUTPUT_DIR holds a run, else `OUTPUT_DIR-audit` (a run refuses an
    output_dir that holds anything else)."""
    output = pathlib.Path(recipe.output_dir)
    if (output / engine.STATE).exists():
        return output / "audit"
    return output.with_name(f"{output.name}-audit")


class SplitFeatures:
    """The feature files of several splits as one array of rows, read
    memory-mapped: `features[a:b]` reads rows `a` to `b` only.

    Args:
        files: `{split: FeatureFile}`, in the order of the rows.
    """

    def __init__(self, files):
        self.splits = list(files)
        self._arrays = [
            np.load(file.path, mmap_mode="r")[: file.rows] for file in files.values()
        ]
        sizes = [len(array) for array in self._arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        dim = next(iter(files.values())).dim
        self.shape = (int(self.offsets[-1]), dim)
        # Split and image index of each row.
        self.split_of = np.repeat(np.arange(len(sizes)), sizes)
        self.index_of = np.concatenate([file.indices for file in files.values()])
        self.labels = np.concatenate([file.labels for file in files.values()])

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"rows are read by a slice. Received: rows={rows!r}")
        start, stop, _ = rows.indices(len(self))
        parts = []
        for array, offset in zip(self._arrays, self.offsets, strict=False):
            a, b = max(start - offset, 0), min(stop - offset, len(array))
            if a < b:
                parts.append(array[a:b])
        if not parts:
            return np.empty((0, self.shape[1]), np.float32)
        return np.concatenate(parts).astype(np.float32, copy=False)


def feature_statistics(features, chunk_size=CHUNK_SIZE):
    """Mean and standard deviation of each feature, read `chunk_size` rows at
    a time (sums in float64)."""
    n = len(features)
    if n == 0:
        raise ValueError("no features to audit")
    total = np.zeros(features.shape[1])
    squares = np.zeros(features.shape[1])
    for start in range(0, n, chunk_size):
        block = np.asarray(features[start : start + chunk_size], np.float64)
        total += block.sum(0)
        squares += (block * block).sum(0)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean * mean, 0.0))
    return mean.astype(np.float32), std.astype(np.float32)


def _standardise(block, mean, scale):
    block = np.asarray(block, np.float32)
    if mean is not None:
        block = block - mean
    if scale is not None:
        # A constant feature is 0 after centring; its scale does not matter.
        block = block / np.where(scale > 0, scale, 1.0)
    return block


def similar_pairs(
    features,
    threshold,
    *,
    mean=None,
    scale=None,
    chunk_size=CHUNK_SIZE,
    max_pairs=MAX_PAIRS,
    log=None,
    every=10.0,
):
    """Pairs of rows whose cosine similarity is at least `threshold`, without
    an `N x N` matrix: rows are compared `chunk_size` against `chunk_size`
    (each block standardised and L2-normalised as it is read), and only the
    pairs above the threshold are kept.

    Args:
        features: A `(N, dim)` array, or anything sliced by rows
            (`SplitFeatures`, a memory-mapped `.npy`).
        threshold: Cosine similarity, in (0, 1].
        mean, scale: Subtracted from, then divided into, each row before
            normalising (None: left as they are).
        chunk_size: Rows per block; memory is about `chunk_size**2` floats.
        max_pairs: Pairs kept at most, the most similar.
        log: Where progress lines go (every `every` seconds), or None.

    Returns:
        `(pairs, similarities, truncated)`: int64 `(k, 2)` row pairs `(i, j)`
        with `i < j`, most similar first; their float32 similarities; and
        whether pairs beyond `max_pairs` were left out.
    """
    if not 0 < threshold <= 1:
        raise ValueError(
            f"threshold must be in (0, 1]. Received: threshold={threshold}"
        )
    if chunk_size < 1 or max_pairs < 1:
        raise ValueError(
            "chunk_size and max_pairs must be positive. Received: "
            f"chunk_size={chunk_size}, max_pairs={max_pairs}"
        )
    n = len(features)

    def block(start):
        x = _standardise(features[start : start + chunk_size], mean, scale)
        norm = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(norm, np.finfo(np.float32).tiny)

    found_pairs, found_similarities, kept, truncated = [], [], 0, False

    def prune():
        pairs = np.concatenate(found_pairs)
        similarities = np.concatenate(found_similarities)
        top = np.argsort(-similarities, kind="stable")[:max_pairs]
        found_pairs[:] = [pairs[top]]
        found_similarities[:] = [similarities[top]]
        return len(top)

    blocks = math.ceil(n / chunk_size)
    total, done = blocks * (blocks + 1) // 2, 0
    began = last = time.perf_counter()
    for a in range(0, n, chunk_size):
        rows = block(a)
        for b in range(a, n, chunk_size):
            columns = rows if b == a else block(b)
            similarity = rows @ columns.T
            i, j = np.nonzero(similarity >= threshold)
            if b == a:  # the diagonal block: each pair once, no row with itself
                upper = i < j
                i, j = i[upper], j[upper]
            if len(i):
                found_pairs.append(np.stack([i + a, j + b], axis=1).astype(np.int64))
                found_similarities.append(similarity[i, j].astype(np.float32))
                kept += len(i)
                if kept > 2 * max_pairs:
                    kept, truncated = prune(), True
            done += 1
            now = time.perf_counter()
            if log is not None and now - last >= every:
                last = now
                rate = done / (now - began)
                log(
                    f"audit: similarity blocks {done:,}/{total:,} "
                    f"({kept:,} pairs so far), ETA {(total - done) / rate:,.0f} s"
                )
    if not found_pairs:
        return np.empty((0, 2), np.int64), np.empty(0, np.float32), False
    if kept > max_pairs:
        truncated = True
    prune()
    return found_pairs[0], found_similarities[0], truncated


def _digest_path(pipelines, split, directory):
    source = pipelines.data.splits[split]
    key = hashlib.sha256(
        f"{source.key()} {pipelines.image_size} {_DIGEST_VERSION}".encode()
    ).hexdigest()
    return pathlib.Path(directory) / f"digests-{split}-{key[:16]}.npz"


def image_digests(pipelines, split, directory, *, batch_size=256, log=print):
    """BLAKE2b-128 digest of each image of a split as the model sees it
    (decoded, resized, uint8), kept in `directory` by content key.

    Returns:
        `(indices, digests)`: the image index of each digest (broken files
        have none) and the digests, a `(n,)` array of 16-byte strings.
    """
    path = _digest_path(pipelines, split, directory)
    if path.exists():
        with np.load(path, allow_pickle=False) as saved:
            return saved["indices"], saved["digests"]
    indices, digests = [], []
    for x, _, index in pipelines.dataset(split, batch_size, with_index=True):
        pixels = keras.ops.convert_to_numpy(x).astype(np.uint8)
        digests.extend(
            hashlib.blake2b(image.tobytes(), digest_size=16).digest()
            for image in pixels
        )
        indices.append(keras.ops.convert_to_numpy(index))
    indices = np.concatenate(indices) if indices else np.empty(0)
    indices = indices.astype(np.int64)
    digests = np.array(digests, dtype="S16")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial.npz")
    np.savez(partial, indices=indices, digests=digests)
    partial.replace(path)
    log(f"audit: pixel digests of {split} ({len(digests):,} images) in {path.name}")
    return indices, digests


def exact_duplicates(digests):
    """Groups of rows with the same digest (each a sorted array of rows, at
    least two), the largest groups first; an empty digest (an image without
    one) is in no group."""
    digests = np.asarray(digests)
    rows = np.flatnonzero(digests != b"")
    if not len(rows):
        return []
    _, inverse, counts = np.unique(
        digests[rows], return_inverse=True, return_counts=True
    )
    order = rows[np.argsort(inverse, kind="stable")]
    bounds = np.cumsum(counts)[:-1]
    groups = [g for g in np.split(order, bounds) if len(g) > 1]
    groups.sort(key=lambda g: (-len(g), int(g[0])))
    return [np.sort(g) for g in groups]


def out_of_fold_probabilities(
    features, labels, num_classes, *, folds=FOLDS, seed=0, C=1.0, max_iter=1000
):
    """Predicted class probabilities of each row from a logistic regression
    trained on the other folds (`cross_val_predict`, stratified, shuffled
    with `seed`).

    Returns:
        `(probabilities, folds, converged)`: float `(n, num_classes)` (0 for a
        class without images), the folds used (fewer than asked when a class
        has fewer images) and whether every fit converged.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.model_selection import cross_val_predict

    labels = np.asarray(labels)
    present, encoded = np.unique(labels, return_inverse=True)
    if len(present) < 2:
        raise AuditError(
            f"a linear probe needs at least 2 classes with images; found {len(present)}"
        )
    smallest = int(np.bincount(encoded).min())
    if smallest < 2:
        raise AuditError(
            "every class needs at least 2 images for out-of-fold predictions; "
            f"class {int(present[np.argmin(np.bincount(encoded))])} has 1"
        )
    folds = min(folds, smallest)
    probe = LogisticRegression(C=C, max_iter=max_iter)
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        predicted = cross_val_predict(
            probe, features, encoded, cv=splitter, method="predict_proba"
        )
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    probabilities = np.zeros((len(labels), num_classes))
    probabilities[:, present] = predicted
    return probabilities, folds, converged


def label_issues(labels, probabilities):
    """Rows whose label looks wrong, most suspicious first (cleanlab's
    `find_label_issues`, ranked by self-confidence)."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels)
    present, encoded = np.unique(labels, return_inverse=True)
    shares = probabilities[:, present]
    shares = shares / np.maximum(shares.sum(1, keepdims=True), 1e-12)
    return np.asarray(
        find_label_issues(
            encoded, shares, return_indices_ranked_by="self_confidence", n_jobs=1
        ),
        np.int64,
    )


def class_balance(labels_by_split, class_names):
    """Images per class in each split, the largest class over the smallest,
    and each split's total variation distance from train's class shares."""
    k = len(class_names)

    def shares(labels):
        counts = np.bincount(np.asarray(labels, np.int64), minlength=k)
        return counts, counts / max(counts.sum(), 1)

    _, train = shares(labels_by_split["train"])
    out = {}
    for split, labels in labels_by_split.items():
        counts, share = shares(labels)
        present = counts[counts > 0]
        out[split] = {
            "counts": {
                name: int(c) for name, c in zip(class_names, counts, strict=True)
            },
            "images": int(counts.sum()),
            "imbalance": (
                float(present.max() / present.min()) if len(present) else None
            ),
            "missing_classes": [
                n for n, c in zip(class_names, counts, strict=True) if not c
            ],
            "distance_from_train": float(0.5 * np.abs(share - train).sum()),
        }
    return out


def _pyplot():
    # matplotlib only for the figures; Agg writes files without a display.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _pixels(pipelines, wanted):
    """`{(split, index): uint8 image}` of the images the figures show, read
    one by one (a streamed split: one pass to them)."""
    import tensorflow as tf

    out = {}
    for split, indices in wanted.items():
        source = pipelines.data.splits[split]
        if source.random_access:
            for index in sorted(indices):
                image, _, status = source.element(tf.constant(index, tf.int64))
                if int(status) == 1:
                    image = resize_uint8(image, pipelines.image_size)
                    out[split, index] = image.numpy()
            continue
        last = max(indices)
        for index, (image, _) in enumerate(source.stream()):
            if index in indices:
                out[split, index] = resize_uint8(image, pipelines.image_size).numpy()
            if index >= last:
                break
    return out


def _figure(cells, columns, path, empty):
    """A grid of `(image, caption)` cells (None leaves a cell blank)."""
    plt = _pyplot()
    if not cells:
        fig, ax = plt.subplots(figsize=(4, 1))
        ax.text(0.5, 0.5, empty, ha="center", va="center")
        ax.axis("off")
        fig.savefig(path, dpi=80)
        plt.close(fig)
        return
    rows = math.ceil(len(cells) / columns)
    fig, axes = plt.subplots(
        rows, columns, figsize=(1.9 * columns, 2.3 * rows), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, cell in zip(axes.ravel(), cells, strict=False):
        if cell is None:
            continue
        image, caption = cell
        if image is not None:
            ax.imshow(image)
        ax.set_title(caption, fontsize=7)
    # Fixed spacing: `tight_layout` measures every title, seconds for a grid.
    fig.subplots_adjust(
        left=0.02, right=0.98, bottom=0.02, top=1 - 0.5 / (2.3 * rows), hspace=0.7
    )
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _plot_balance(balance, path):
    plt = _pyplot()
    names = list(next(iter(balance.values()))["counts"])
    x = np.arange(len(names))
    width = 0.8 / len(balance)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(names) + 2), 3.2))
    for n, (split, entry) in enumerate(balance.items()):
        ax.bar(x + n * width, list(entry["counts"].values()), width, label=split)
    ax.set_xticks(x + width * (len(balance) - 1) / 2, names, rotation=90, fontsize=7)
    ax.set_ylabel("images")
    ax.set_title("images per class")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def audit(
    recipe,
    *,
    threshold=THRESHOLD,
    out=None,
    chunk_size=CHUNK_SIZE,
    max_pairs=MAX_PAIRS,
    folds=FOLDS,
    shown=24,
    log=print,
):
    """`kerazoo audit RECIPE` (see the module docstring).

    Args:
        recipe: A `kerazoo.recipes.Recipe`; its model (body, weights, input
            size) gives the features, its data the images.
        threshold: Cosine similarity from which two images are near
            duplicates.
        out: Folder of the files (default `audit_dir(recipe)`). Features are
            cached in `data.cache_dir`, else in the run's `OUTPUT_DIR/cache`
            when output_dir holds a run (its stage-1 features are reused),
            else in `out/cache`.
        chunk_size: Rows per block of the similarity.
        max_pairs: Near-duplicate pairs kept at most (the most similar).
        folds: Folds of the linear probe.
        shown: Images (or pairs, or groups) in each figure at most.
        log: Where progress lines go.

    Returns:
        The report (also in `out/audit.json`), with `files`.
    """
    if not 0 < threshold <= 1:
        raise ValueError(
            f"threshold must be in (0, 1]. Received: threshold={threshold}"
        )
    out = pathlib.Path(out or audit_dir(recipe))
    output = pathlib.Path(recipe.output_dir)
    run_there = (output / engine.STATE).exists()
    keras.utils.set_random_seed(recipe.seed)  # the run's body, when random
    data = engine.load_recipe_data(recipe)
    log(f"data: {data.summary()}")
    pipelines, plan, cache_dir = engine._pipelines(
        recipe, data, data, output if run_there else out, log
    )
    log(f"data cache: {plan.reason}")
    began = time.perf_counter()
    files, digests = {}, {}
    try:
        parts = engine.build(recipe, data.num_classes)
        for split in SPLITS:
            files[split] = engine.extract_features(
                parts, pipelines, split, cache_dir, log=log
            )
        feature_seconds = time.perf_counter() - began
        for split in SPLITS:
            index, digest = image_digests(pipelines, split, cache_dir, log=log)
            digests[split] = dict(zip(index.tolist(), digest, strict=True))
        features = SplitFeatures(files)
        if len(features) == 0:
            raise AuditError(f"{recipe.data.uri}: no image could be read")
        log(
            f"audit: features of {len(features):,} images ({features.shape[1]} "
            f"each, {feature_seconds:.1f} s) in {cache_dir}"
        )
        report = _findings(
            recipe,
            data,
            features,
            digests,
            threshold=threshold,
            chunk_size=chunk_size,
            max_pairs=max_pairs,
            folds=folds,
            log=log,
        )
        report["features"] = {
            "dim": features.shape[1],
            "seconds": feature_seconds,
            "files": {split: str(file.path) for split, file in files.items()},
        }
        out.mkdir(parents=True, exist_ok=True)
        report["files"] = _write_figures(report, pipelines, out, shown)
    finally:
        pipelines.close()
        for file in files.values():
            file.close()
    report["seconds"] = time.perf_counter() - began
    path = out / "audit.json"
    report["files"]["json"] = str(path)
    replace_text(path, json.dumps(report, indent=2))
    return report


def _findings(
    recipe, data, features, digests, *, threshold, chunk_size, max_pairs, folds, log
):
    names = data.class_names
    splits = features.splits
    row_digests = np.array(
        [
            digests[splits[s]].get(int(i), b"")
            for s, i in zip(features.split_of, features.index_of, strict=True)
        ],
        dtype="S16",
    )

    def image(row):
        split = splits[features.split_of[row]]
        index = int(features.index_of[row])
        label = int(features.labels[row])
        return {
            "split": split,
            "index": index,
            "name": data.splits[split].name(index),
            "label": names[label],
        }

    start = time.perf_counter()
    groups = exact_duplicates(row_digests)
    exact = []
    for group in groups:
        labels = {int(features.labels[row]) for row in group}
        exact.append(
            {
                "images": [image(int(row)) for row in group],
                "conflicting": len(labels) > 1,
                "cross_split": len({int(features.split_of[r]) for r in group}) > 1,
            }
        )
    log(
        f"audit: {len(exact)} groups of exact duplicates "
        f"({sum(len(g['images']) for g in exact)} images, "
        f"{sum(g['conflicting'] for g in exact)} with conflicting labels)"
    )

    mean, std = feature_statistics(features, chunk_size)
    pairs, similarities, truncated = similar_pairs(
        features,
        threshold,
        mean=mean,
        scale=std,
        chunk_size=chunk_size,
        max_pairs=max_pairs,
        log=log,
    )
    near = []
    for (i, j), similarity in zip(pairs.tolist(), similarities.tolist(), strict=True):
        near.append(
            {
                "images": [image(i), image(j)],
                "similarity": round(float(similarity), 6),
                "cross_split": bool(features.split_of[i] != features.split_of[j]),
                "exact": bool(row_digests[i] and row_digests[i] == row_digests[j]),
            }
        )
    cross = sum(p["cross_split"] for p in near)
    log(
        f"audit: {len(near):,} near-duplicate pairs at cosine >= {threshold} "
        f"({cross:,} across splits: leakage){' (truncated)' if truncated else ''}, "
        f"{time.perf_counter() - start:.1f} s"
    )

    start = time.perf_counter()
    standardised = np.empty(features.shape, np.float32)
    for a in range(0, len(features), chunk_size):
        block = features[a : a + chunk_size]
        standardised[a : a + len(block)] = _standardise(block, mean, std)
    probabilities, used_folds, converged = out_of_fold_probabilities(
        standardised,
        features.labels,
        len(names),
        folds=folds,
        seed=recipe.seed,
    )
    del standardised
    accuracy = float((probabilities.argmax(1) == features.labels).mean())
    ranked = label_issues(features.labels, probabilities)
    issues = []
    for row in ranked.tolist():
        predicted = int(probabilities[row].argmax())
        issues.append(
            {
                **image(row),
                "predicted": names[predicted],
                "probability_of_label": round(
                    float(probabilities[row, features.labels[row]]), 6
                ),
                "probability_of_predicted": round(
                    float(probabilities[row, predicted]), 6
                ),
            }
        )
    log(
        f"audit: {len(issues):,} suspected label errors (linear probe, "
        f"{used_folds}-fold out-of-fold accuracy {accuracy:.4f}"
        f"{'' if converged else ', not converged'}; cleanlab), "
        f"{time.perf_counter() - start:.1f} s"
    )

    balance = class_balance(
        {
            split: features.labels[features.split_of == n]
            for n, split in enumerate(splits)
        },
        names,
    )
    return {
        "recipe": recipe.name,
        "data": recipe.data.uri,
        "images": {
            split: int((features.split_of == n).sum()) for n, split in enumerate(splits)
        },
        "exact_duplicates": {
            "groups": exact,
            "images": sum(len(g["images"]) for g in exact),
            "conflicting": sum(g["conflicting"] for g in exact),
        },
        "near_duplicates": {
            "threshold": threshold,
            "standardised": True,
            "pairs": near,
            "cross_split": cross,
            "within_split": len(near) - cross,
            "truncated": truncated,
        },
        "label_issues": {
            "probe": {
                "model": "LogisticRegression",
                "folds": used_folds,
                "out_of_fold_accuracy": accuracy,
                "converged": converged,
                "ranking": "cleanlab find_label_issues, self_confidence",
            },
            "count": len(issues),
            "images": issues,
        },
        "class_balance": balance,
    }


def _caption(entry, extra=""):
    return f"{entry['split']} #{entry['index']}\n{entry['label']}{extra}"


def _write_figures(report, pipelines, out, shown):
    groups = report["exact_duplicates"]["groups"][: max(1, shown // 4)]
    # Leakage first: the pairs that change a score.
    pairs = sorted(
        report["near_duplicates"]["pairs"], key=lambda p: not p["cross_split"]
    )[: max(1, shown // 2)]
    issues = report["label_issues"]["images"][:shown]
    wanted = {}
    for entry in (
        [e for g in groups for e in g["images"][:6]]
        + [e for p in pairs for e in p["images"]]
        + issues
    ):
        wanted.setdefault(entry["split"], set()).add(entry["index"])
    pixels = _pixels(pipelines, wanted) if wanted else {}

    def cell(entry, extra=""):
        return pixels.get((entry["split"], entry["index"])), _caption(entry, extra)

    files = {}
    columns = max([len(g["images"][:6]) for g in groups] or [1])
    cells = []
    for group in groups:
        members = [cell(e) for e in group["images"][:6]]
        cells += members + [None] * (columns - len(members))
    files["exact_duplicates"] = str(out / "exact_duplicates.png")
    _figure(cells, columns, files["exact_duplicates"], "no exact duplicates")

    cells = []
    for pair in pairs:
        cells += [
            cell(pair["images"][0]),
            cell(pair["images"][1], f"\ncos {pair['similarity']:.4f}"),
        ]
    files["near_duplicates"] = str(out / "near_duplicates.png")
    _figure(cells, 6, files["near_duplicates"], "no near duplicates")

    cells = [
        cell(
            e,
            f" -> {e['predicted']} ({e['probability_of_predicted']:.2f})",
        )
        for e in issues
    ]
    files["label_issues"] = str(out / "label_issues.png")
    _figure(cells, 6, files["label_issues"], "no suspected label errors")

    files["class_balance"] = str(out / "class_balance.png")
    _plot_balance(report["class_balance"], files["class_balance"])
    return files


def describe(report):
    """Lines summing up an audit."""
    exact = report["exact_duplicates"]
    near = report["near_duplicates"]
    issues = report["label_issues"]
    lines = [
        f"exact duplicates: {len(exact['groups'])} groups, {exact['images']} "
        f"images ({exact['conflicting']} groups with conflicting labels)",
        f"near duplicates (cosine >= {near['threshold']}): {len(near['pairs'])} "
        f"pairs, {near['cross_split']} across splits (leakage)",
        f"suspected label errors: {issues['count']} (probe out-of-fold accuracy "
        f"{issues['probe']['out_of_fold_accuracy']:.4f})",
    ]
    for split, entry in report["class_balance"].items():
        line = f"class balance, {split}: {entry['images']} images"
        if entry["imbalance"] is not None:
            line += f", largest class / smallest {entry['imbalance']:.2f}"
        if entry["missing_classes"]:
            line += f", no image of {', '.join(entry['missing_classes'])}"
        lines.append(line)
    return lines
