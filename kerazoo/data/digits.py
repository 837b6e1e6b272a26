"""scikit-learn's handwritten digits: 1,797 real 8x8 images that ship with the
package, so kerazoo's default data never needs a network."""

import numpy as np


def load_digits_splits(seed=0, validation_fraction=0.15, test_fraction=0.15):
    """Fixed stratified train/validation/test splits of the digits.

    Images are returned as raw 0-255 values, like any other image source, so that
    models carry their own rescaling.

    Args:
        seed: Seed of the split; the same seed always gives the same split.
        validation_fraction: Share of the images held out for validation.
        test_fraction: Share of the images held out for the final test.

    Returns:
        A dict with keys `"train"`, `"validation"`, `"test"`, each an `(images,
        labels)` pair: `uint8` images of shape `(n, 8, 8, 1)` and `int32` labels
        0-9.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    for name, value in (
        ("validation_fraction", validation_fraction),
        ("test_fraction", test_fraction),
    ):
        if not 0 < value < 1:
            raise ValueError(f"`{name}` must be in (0, 1). Received: {name}={value}")
    if validation_fraction + test_fraction >= 1:
        raise ValueError(
            "`validation_fraction + test_fraction` must leave images for training. "
            f"Received: validation_fraction={validation_fraction}, "
            f"test_fraction={test_fraction}"
        )
    digits = load_digits()
    # The digits are 0-16 intensities; scale to the 0-255 range of image files.
    images = np.round(digits.images * (255.0 / 16.0)).astype("uint8")[..., None]
    labels = digits.target.astype("int32")
    x_rest, x_test, y_rest, y_test = train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest,
        y_rest,
        test_size=validation_fraction / (1 - test_fraction),
        stratify=y_rest,
        random_state=seed,
    )
    return {
        "train": (x_train, y_train),
        "validation": (x_val, y_val),
        "test": (x_test, y_test),
    }


def few_shot_indices(labels, shots, seed=0):
    """Sorted indices of `shots` examples of each class present in `labels`,
    drawn without replacement; a class with fewer examples is refused."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        where = np.flatnonzero(labels == label)
        if len(where) < shots:
            raise ValueError(
                f"shots={shots}: class {label} has only {len(where)} examples"
            )
        keep.extend(rng.permutation(where)[:shots])
    return np.sort(np.asarray(keep, dtype="int64"))
