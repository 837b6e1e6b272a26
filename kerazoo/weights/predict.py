"""Classify image files with a pretrained model: `kerazoo predict`.

ImageNet class names come from tensorflow-datasets (a kerazoo dependency), which
ships the 1,000 names in ImageNet's label order.
"""

import pathlib

import numpy as np

from kerazoo._compat import imagenet_label_names
from kerazoo.weights.tta import with_tta


def imagenet_class_names():
    """The 1,000 ImageNet class names in label order, or None when the installed
    tensorflow-datasets does not have them."""
    return imagenet_label_names()


def load_image(path, size, crop_fraction=0.875):
    """An image file as the float32 array `(height, width, 3)`, 0-255: the
    central `crop_fraction` of its shorter side, resized bicubically to `size`
    (the usual ImageNet evaluation)."""
    import tensorflow as tf

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}")
    try:
        image = tf.io.decode_image(
            tf.io.read_file(str(path)), channels=3, expand_animations=False
        )
    except tf.errors.InvalidArgumentError:
        raise ValueError(f"{path} is not a JPEG, PNG, GIF or BMP image") from None
    height, width = int(image.shape[0]), int(image.shape[1])
    side = round(min(height, width) * crop_fraction)
    top, left = (height - side) // 2, (width - side) // 2
    crop = tf.cast(image[top : top + side, left : left + side], "float32")
    resized = tf.image.resize(crop, size, method="bicubic")
    return np.clip(resized.numpy(), 0, 255)


def predict_files(model, paths, top=5, class_names=None, crop_fraction=0.875, tta=None):
    """Top-`top` classes of each image file.

    Args:
        tta: Test-time augmentation, `kerazoo.weights.tta.with_tta`'s
            arguments (`{"flips": True, "crops": 5}`), or None: the
            probabilities are averaged over the views of each loaded image.

    Returns:
        A list, per file, of `(class_index, class_name_or_None, probability)`.
    """
    size = tuple(model.inputs[0].shape[1:3])
    images = np.stack([load_image(p, size, crop_fraction) for p in paths])
    if tta:
        model = with_tta(model, **tta)
    probabilities = np.asarray(model.predict(images, verbose=0))
    if probabilities.ndim == 3:  # GoogLeNet's auxiliary heads
        probabilities = probabilities[0]
    results = []
    for row in probabilities:
        order = np.argsort(row)[::-1][:top]
        results.append(
            [
                (int(i), class_names[i] if class_names else None, float(row[i]))
                for i in order
            ]
        )
    return results
