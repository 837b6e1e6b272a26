import keras
from keras import ops

from kerazoo._checks import check_choice
from kerazoo.api import register

# mode: (flip RGB to BGR, per-channel scale, per-channel offset), applied as
# x * scale + offset after the optional flip, on raw RGB values in 0-255.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
MODES = {
    "torch": (
        False,
        tuple(1 / (255 * s) for s in _IMAGENET_STD),
        tuple(-m / s for m, s in zip(_IMAGENET_MEAN, _IMAGENET_STD, strict=True)),
    ),
    "caffe": (True, (1.0, 1.0, 1.0), (-103.939, -116.779, -123.68)),
    "tf": (False, (1 / 127.5,) * 3, (-1.0,) * 3),
    "lite": (False, (1 / 128,) * 3, (-127 / 128,) * 3),
    "efficientnetv2": (False, (1 / 128,) * 3, (-1.0,) * 3),
    "unit": (False, (1 / 255,) * 3, (0.0,) * 3),
    "none": (False, (1.0,) * 3, (0.0,) * 3),
    "custom": None,  # per-channel scale and offset given to the layer
}


@register
class ImagePreprocessing(keras.layers.Layer):
    """Maps raw RGB images (0-255, channels last) to what a network expects.

    Modes, as the pretrained weights of each family expect them:

    - `"torch"`: `(x / 255 - mean) / std` with ImageNet's mean
      (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
    - `"caffe"`: RGB to BGR, then minus the BGR ImageNet mean (103.939, 116.779,
      123.68), no scaling (keras.applications' ResNet weights);
    - `"tf"`: `x / 127.5 - 1`, to [-1, 1];
    - `"lite"`: `(x - 127) / 128` (EfficientNet-Lite's official weights);
    - `"efficientnetv2"`: `x / 128 - 1` (EfficientNetV2-S, M and L's
      weights);
    - `"unit"`: `x / 255`, to [0, 1];
    - `"none"`: unchanged;
    - `"custom"`: `x * scale + offset` with the given per-channel `scale` and
      `offset` (e.g. what a ported model's own normalization layers computed).

    Being a layer of the model, it is saved and exported with it, so serving
    needs no outside code.

    Args:
        mode: One of the modes above.
        scale: Three per-channel factors (`"custom"` only).
        offset: Three per-channel offsets (`"custom"` only).
        **kwargs: Base layer arguments.
    """

    def __init__(self, mode="torch", scale=None, offset=None, **kwargs):
        super().__init__(**kwargs)
        self.mode = check_choice("mode", mode, tuple(MODES))
        if mode == "custom":
            self.set_affine(scale, offset)
        elif scale is not None or offset is not None:
            raise ValueError(
                f"`scale` and `offset` go with mode='custom'. Received: mode={mode!r}"
            )
        else:
            self.flip, self.scale, self.offset = MODES[mode]

    def set_affine(self, scale, offset):
        """Switches to `"custom"`: `x * scale + offset`, per channel."""
        values = []
        for name, value in (("scale", scale), ("offset", offset)):
            value = tuple(float(v) for v in (value if value is not None else ()))
            if len(value) != 3:
                raise ValueError(
                    f"`{name}` must have 3 values (RGB). Received: {name}={value}"
                )
            values.append(value)
        self.mode = "custom"
        self.flip = False
        self.scale, self.offset = values

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        if self.flip:
            x = ops.flip(x, axis=-1)
        # An identity scale or offset costs a pass over the image: skipped.
        if any(s != 1.0 for s in self.scale):
            x = x * ops.convert_to_tensor(self.scale, dtype=self.compute_dtype)
        if any(o != 0.0 for o in self.offset):
            x = x + ops.convert_to_tensor(self.offset, dtype=self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = {**super().get_config(), "mode": self.mode}
        if self.mode == "custom":
            config.update(scale=list(self.scale), offset=list(self.offset))
        return config
