"""Test-time augmentation: a classifier's probabilities averaged over views
of each image (its horizontal flip, crops resized back to the input).

`TestTimeAugmentation` wraps a model as a Keras layer, so that anything that
predicts with a model (`model.predict`, `kerazoo predict`, the fine-tuning
engine's evaluation, in one process or several) predicts with views instead.
It uses `keras.ops` only (any backend).

The views of an image, in order: the image, then each of `crops` crops of
side `scale` x the image's (the center, then the top-left, top-right,
bottom-left and bottom-right corners), resized back to the input size
(bilinear); with `flips`, each of these is followed by its mirror image. So
`flips` alone gives 2 views, `crops=5` 6, both 12. The model's outputs
(probabilities: kerazoo's classifiers end in a softmax) are averaged with
equal weights.

Example:

>>> import keras
>>> model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(),
...                           keras.layers.Dense(2, activation="softmax")])
>>> tta = keras.Sequential([keras.Input((8, 8, 3)),
...                         TestTimeAugmentation(model, flips=True, crops=1)])
>>> tta.predict(keras.ops.ones((1, 8, 8, 3)), verbose=0).shape
(1, 2)
"""

import keras
from keras import ops

MAX_CROPS = 5
# Where each crop sits, as (vertical, horizontal) fractions of the room left.
_CROP_PLACES = ((0.5, 0.5), (0.0, 0.0), (0.0, 1.0), (1.0, 0.0), (1.0, 1.0))


def check_options(flips=True, crops=0, scale=0.875):
    """Raises `ValueError` for options that give no view or a bad one."""
    if not isinstance(flips, bool):
        raise ValueError(f"flips must be true or false. Received: flips={flips!r}")
    if isinstance(crops, bool) or not isinstance(crops, int):
        raise ValueError(f"crops must be an integer. Received: crops={crops!r}")
    if not 0 <= crops <= MAX_CROPS:
        raise ValueError(
            f"crops must be in [0, {MAX_CROPS}] (the center, then the four "
            f"corners). Received: crops={crops}"
        )
    if not 0 < scale < 1:
        raise ValueError(
            f"scale (each crop's side over the image's) must be in (0, 1). "
            f"Received: scale={scale!r}"
        )
    if not flips and not crops:
        raise ValueError(
            "test-time augmentation with flips false and crops 0 has no view "
            "but the image itself; set flips true or crops >= 1"
        )


def view_names(flips=True, crops=0):
    """The views' names, in the order they are averaged."""
    names = ["image"] + [
        ("center", "top_left", "top_right", "bottom_left", "bottom_right")[i]
        for i in range(crops)
    ]
    if flips:
        names = [n for name in names for n in (name, f"{name}_flipped")]
    return names


def describe(flips=True, crops=0, scale=0.875):
    """What the log says of the views: `"flips, 5 crops at 0.875: 12 views"`."""
    parts = (["flips"] if flips else []) + (
        [f"{crops} crop{'s' if crops > 1 else ''} at {scale:g}"] if crops else []
    )
    return f"{', '.join(parts)}: {len(view_names(flips, crops))} views"


class TestTimeAugmentation(keras.layers.Layer):
    """A classifier whose outputs are averaged over views of each image.

    Args:
        model: The classifier, `(batch, height, width, channels)` images ->
            `(batch, classes)` probabilities (a model with several outputs,
            such as GoogLeNet's auxiliary heads, is read at its first).
        flips: Whether each view is also seen mirrored left to right.
        crops: How many crops (0-5): the center, then the four corners.
        scale: Each crop's side as a fraction of the image's, in (0, 1).

    Call arguments:
        images: A batch of images (channels last), of the model's size.

    Returns:
        The mean of the model's outputs over the views, `(batch, classes)`.
    """

    def __init__(self, model, flips=True, crops=0, scale=0.875, **kwargs):
        super().__init__(**kwargs)
        check_options(flips, crops, scale)
        self.model = model
        self.flips = flips
        self.crops = crops
        self.scale = float(scale)

    def _crop(self, images, place):
        height, width = images.shape[1], images.shape[2]
        side_h = max(1, round(height * self.scale))
        side_w = max(1, round(width * self.scale))
        top = round((height - side_h) * place[0])
        left = round((width - side_w) * place[1])
        crop = images[:, top : top + side_h, left : left + side_w, :]
        return ops.image.resize(crop, (height, width), interpolation="bilinear")

    def _views(self, images):
        views = [images] + [self._crop(images, p) for p in _CROP_PLACES[: self.crops]]
        if self.flips:
            views = [v for view in views for v in (view, ops.flip(view, axis=2))]
        return views

    def call(self, images):
        total = None
        views = self._views(images)
        for view in views:
            outputs = self.model(view, training=False)
            if isinstance(outputs, list | tuple):
                outputs = outputs[0]
            outputs = ops.cast(outputs, "float32")
            total = outputs if total is None else total + outputs
        return total / len(views)


def with_tta(model, flips=True, crops=0, scale=0.875):
    """`model` (images -> probabilities) as a functional model that averages
    its outputs over the views (`TestTimeAugmentation`)."""
    images = keras.Input(model.inputs[0].shape[1:], name="image")
    # float32 views whatever the dtype policy: the model casts its own inputs.
    layer = TestTimeAugmentation(
        model, flips=flips, crops=crops, scale=scale, dtype="float32"
    )
    return keras.Model(images, layer(images), name=f"{model.name}_tta")


def parse_options(text):
    """`kerazoo predict --tta`'s value as `with_tta` arguments: comma-separated
    `flips`, `crops=N` and `scale=S` (`"flips,crops=5"`); what is left out is
    off (`flips` false, `crops` 0) or the default (`scale` 0.875).

    Raises:
        ValueError: An unknown or malformed part (named), or no view.
    """
    options = {"flips": False, "crops": 0, "scale": 0.875}
    for part in (p.strip() for p in text.split(",")):
        key, _, value = part.partition("=")
        try:
            if part == "flips":
                options["flips"] = True
            elif key == "crops" and value:
                options["crops"] = int(value)
            elif key == "scale" and value:
                options["scale"] = float(value)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"--tta: {part!r} is not one of flips, crops=N (0-{MAX_CROPS}), "
                f"scale=S (0-1), comma-separated. Received: {text!r}"
            ) from None
    check_options(**options)
    return options
