"""Fine-tuning recipes: YAML files validated into typed objects.

A recipe is checked whole before anything trains. A wrong key, type or value
raises `RecipeError`, whose message names the key path (`stage2.optimizer.name`),
what was received and what is allowed. `--set key.path=value` overrides are
applied to the YAML before validation, so they are checked the same way.

Example:

>>> recipe = load_recipe("recipes/quickstart.yaml", ["stage2.epochs=1"])
>>> recipe.stage2.epochs
1
"""

import hashlib
import json
import pathlib
import re
import typing

import yaml
from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from kerazoo import catalog
from kerazoo._checks import did_you_mean
from kerazoo._checks import parse_overrides

OPTIMIZERS = ("sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw", "adagrad")
INITIALIZERS = (
    "xavier_normal",
    "xavier_uniform",
    "he_normal",
    "he_uniform",
    "lecun_normal",
    "lecun_uniform",
    "normal",
    "uniform",
)


def monitor_mode(monitor):
    """`"min"` for a loss (`loss`, `val_loss`), `"max"` for any other metric:
    the one place that decides which way a monitored value improves."""
    return "min" if "loss" in monitor else "max"


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# The family option that `model.drop_path` sets.
DROP_PATH_OPTION = "drop_connect_rate"


def _family_options(name):
    """The family options of model `name`: from the catalog for the built-in
    zoo (no Keras), from the registry for a model registered by user code."""
    found = catalog.entry(name)
    if found is not None:
        return found["options"]
    from kerazoo.models import model_info
    from kerazoo.models.catalog import family_options

    return family_options(model_info(name))


class ModelSpec(_Strict):
    name: str = Field(description="A registered model (`kerazoo models`).")
    weights: str | None = Field(
        "imagenet", description="Pretrained weights tag, or null for random."
    )
    input_size: int | tuple[int, int] = Field(
        description="Side of the square input, or [height, width]."
    )
    options: dict[str, typing.Any] = Field(
        default_factory=dict, description="Family options (`create_model`)."
    )
    initializer: typing.Literal[INITIALIZERS] | None = Field(
        None,
        description="Re-initialise every convolution and dense kernel of the body "
        "with this (training from scratch: needs weights: null).",
    )
    drop_path: float | None = Field(
        None,
        ge=0,
        lt=1,
        description="Stochastic depth (Huang et al. 2016): the probability that "
        "the last residual block's branch is dropped in training, rising "
        "linearly from 0 over the blocks (the family option "
        f"`{DROP_PATH_OPTION}`); null keeps the family's default. For the "
        "families whose blocks take it.",
    )

    @model_validator(mode="after")
    def _drop_path_where_blocks_take_it(self):
        if self.drop_path is None:
            return self
        options = _family_options(self.name)
        if DROP_PATH_OPTION not in options:
            having = sorted(
                {
                    e["family"]
                    for e in catalog.entries()
                    if DROP_PATH_OPTION in e["options"]
                }
            )
            raise ValueError(
                f"drop_path: the blocks of {self.name!r} have no stochastic depth; "
                f"the families whose blocks do: {', '.join(having)}"
            )
        if DROP_PATH_OPTION in self.options:
            raise ValueError(
                f"drop_path and options.{DROP_PATH_OPTION} set the same rate: give one"
            )
        return self

    @model_validator(mode="after")
    def _initializer_from_scratch(self):
        if self.initializer is not None and self.weights is not None:
            raise ValueError(
                f"initializer {self.initializer!r} re-initialises the body, which "
                f"would discard the {self.weights!r} weights: set weights: null"
            )
        return self

    @field_validator("name")
    @classmethod
    def _known_model(cls, name):
        if name in catalog.names():  # the built-in zoo, without importing Keras
            return name
        # A model registered by user code is in the registry only.
        from kerazoo.models import list_models

        names = list_models()
        if name not in names:
            hint = did_you_mean(name, names)
            raise ValueError(
                f"unknown model {name!r}.{hint} `kerazoo models` lists all {len(names)}"
            )
        return name

    @field_validator("input_size")
    @classmethod
    def _positive_size(cls, size):
        sides = (size, size) if isinstance(size, int) else size
        if min(sides) < 8:
            raise ValueError(f"each side must be at least 8 pixels, got {size}")
        return size

    @property
    def image_size(self):
        """`(height, width)`."""
        size = self.input_size
        return (size, size) if isinstance(size, int) else tuple(size)


def _number(value):
    return isinstance(value, int | float) and not isinstance(value, bool)


def _section(value, model, shorthand=""):
    """`true` turns a section on with its defaults, `false` or null off."""
    if value is True:
        return {}
    if value is False or value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError(
            f"true (the defaults), false{shorthand} or a mapping of "
            f"{', '.join(model.model_fields)}"
        )
    return value


def _range(pair, low=0.0, high=None):
    """A `[min, max]` pair, each end above `low` and at most `high`."""
    if not low < pair[0] or (high is not None and pair[1] > high):
        raise ValueError(
            f"[min, max], each in ({low:g}, {high:g}]"
            if high is not None
            else f"[min, max], each > {low:g}"
        )
    if pair[0] > pair[1]:
        raise ValueError("[min, max] with min <= max")
    return pair


class RandomResizedCrop(_Strict):
    """A random part of the image (area `scale`, aspect ratio `ratio`)
    resized back to the model's input."""

    scale: tuple[float, float] = Field(
        (0.08, 1.0), description="[min, max] fraction of the image's area."
    )
    ratio: tuple[float, float] = Field(
        (3 / 4, 4 / 3), description="[min, max] width / height of the crop."
    )

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale):
        return _range(scale, high=1)

    @field_validator("ratio")
    @classmethod
    def _ratio(cls, ratio):
        return _range(ratio)


class RandAugment(_Strict):
    """`keras.layers.RandAugment`: `layers` operations drawn per batch from 11."""

    magnitude: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Keras's `factor`: every operation's range scales with it "
        "(rotation up to magnitude x 360 degrees, translation and shear up to "
        "magnitude of the side, ...).",
    )
    layers: int = Field(
        2, ge=1, le=11, description="Operations applied (drawn per batch)."
    )


class AugMix(_Strict):
    """`keras.layers.AugMix`: `width` chains of up to `depth` operations, mixed."""

    severity: int = Field(
        3, ge=1, le=10, description="Strength, 1-10 (Keras's factor x 10)."
    )
    width: int = Field(3, ge=1, description="Chains mixed.")
    depth: int = Field(3, ge=1, description="Most operations in a chain.")
    alpha: float = Field(1.0, gt=0, description="Dirichlet and Beta parameter.")


class RandomErasing(_Strict):
    """`keras.layers.RandomErasing`: a random box of each image replaced."""

    probability: float = Field(0.25, gt=0, le=1, description="Per image.")
    scale: tuple[float, float] = Field(
        (0.02, 0.33),
        description="[min, max] of each side's squared fraction (Keras's scale).",
    )
    fill: typing.Literal["noise"] | float = Field(
        "noise", description="`noise` (Keras's random fill) or a value in 0-255."
    )

    @field_validator("scale")
    @classmethod
    def _scale(cls, scale):
        return _range(scale, high=1)

    @field_validator("fill", mode="before")
    @classmethod
    def _fill(cls, fill):
        if fill != "noise" and not (_number(fill) and 0 <= fill <= 255):
            raise ValueError("'noise' or a value in [0, 255]")
        return fill


class ColorJitter(_Strict):
    """`keras.layers.RandomColorJitter`; 0 leaves a property alone."""

    brightness: float = Field(
        0.0, ge=0, le=1, description="Adds up to +-brightness x 255."
    )
    contrast: float = Field(
        0.0, ge=0, lt=1, description="Contrast x [1 - contrast, 1 + contrast]."
    )
    saturation: float = Field(
        0.0, ge=0, le=1, description="Saturation x [1 - saturation, 1 + saturation]."
    )
    hue: float = Field(0.0, ge=0, le=0.5, description="Hue shift, up to +-hue turn.")

    @property
    def enabled(self):
        return any((self.brightness, self.contrast, self.saturation, self.hue))


class Augment(_Strict):
    """Random augmentation with Keras preprocessing layers (training only).

    Applied per batch, after the cache, in this order: random_resized_crop,
    flip, rotation, zoom, translation, rand_augment, aug_mix, contrast,
    color_jitter, random_erasing."""

    flip: typing.Literal["none", "horizontal", "vertical", "both"] = "none"
    rotation: float = Field(0.0, ge=0, le=0.5, description="Fraction of a turn.")
    zoom: float = Field(0.0, ge=0, lt=1)
    translation: float = Field(0.0, ge=0, lt=1)
    contrast: float = Field(0.0, ge=0, lt=1)
    random_resized_crop: RandomResizedCrop | None = None
    rand_augment: RandAugment | None = None
    aug_mix: AugMix | None = None
    random_erasing: RandomErasing | None = None
    color_jitter: ColorJitter | None = None

    @field_validator("random_resized_crop", "rand_augment", "aug_mix", mode="before")
    @classmethod
    def _switch(cls, value, info):
        models = {
            "random_resized_crop": RandomResizedCrop,
            "rand_augment": RandAugment,
            "aug_mix": AugMix,
        }
        return _section(value, models[info.field_name])

    @field_validator("random_erasing", mode="before")
    @classmethod
    def _erasing(cls, value):
        if _number(value):
            return {"probability": value}
        return _section(value, RandomErasing, ", a probability")

    @field_validator("color_jitter", mode="before")
    @classmethod
    def _jitter(cls, value):
        # A number is brightness, contrast and saturation at once (timm's
        # `color_jitter: 0.4`); `true` would turn nothing on.
        if _number(value):
            return {"brightness": value, "contrast": value, "saturation": value}
        if value is True or not (value is None or isinstance(value, dict)):
            raise ValueError(
                "a strength or a mapping of brightness, contrast, saturation, hue"
            )
        return value

    @property
    def enabled(self):
        return (
            self.flip != "none"
            or self.rotation > 0
            or self.zoom > 0
            or self.translation > 0
            or self.contrast > 0
            or self.random_resized_crop is not None
            or self.rand_augment is not None
            or self.aug_mix is not None
            or self.random_erasing is not None
            or (self.color_jitter is not None and self.color_jitter.enabled)
        )


class MixUp(_Strict):
    """`keras.layers.MixUp` of a training batch with itself, shuffled."""

    alpha: float = Field(
        0.2, gt=0, description="Beta(alpha, alpha) gives each image's share."
    )
    probability: float = Field(1.0, gt=0, le=1, description="Of mixing a batch.")


class CutMix(_Strict):
    """`keras.layers.CutMix`: a box of another image of the batch pasted in."""

    alpha: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Beta(alpha, alpha) gives the box's area (Keras allows <= 1).",
    )
    probability: float = Field(1.0, gt=0, le=1, description="Of mixing a batch.")


def _class_weight(value):
    if value is None or value == "balanced":
        return value
    if isinstance(value, str):
        raise ValueError("'balanced' or a mapping {class: weight}")
    if not isinstance(value, dict) or not value:
        raise ValueError("'balanced' or a mapping {class: weight}, one class at least")
    for key, weight in value.items():
        if isinstance(key, bool) or not isinstance(key, int | str):
            raise ValueError(f"class {key!r}: a class is a name or an index")
        if isinstance(key, int) and key < 0:
            raise ValueError(f"class {key!r}: an index is >= 0")
        if (
            isinstance(weight, bool)
            or not isinstance(weight, int | float)
            or not 0 < weight < float("inf")
        ):
            raise ValueError(
                f"the weight of class {key!r} must be a positive number; got {weight!r}"
            )
    return value


class DataSpec(_Strict):
    uri: str = Field(
        "digits",
        description="`digits[?shots=N]`, `tfds:NAME[?train=..&validation=..&test=..]`"
        ", `folder:PATH[?validation=F&test=F]` (class folders, or train/ val/ "
        "test/ folders of class folders) or `csv:FILE` (path,label[,split]).",
    )
    augment: Augment = Augment()
    mixup: MixUp | None = Field(
        None,
        description="Batch-level MixUp in stages with augment: true (labels one-hot).",
    )
    cutmix: CutMix | None = Field(
        None,
        description="Batch-level CutMix in stages with augment: true; with mixup "
        "too, each batch picks one of the two (even odds), then applies it with "
        "its probability.",
    )
    class_weight: typing.Literal["balanced"] | dict[int | str, float] | None = Field(
        None,
        description="Weights of the training loss per class, in every stage: "
        "`balanced` (n / (classes x count), from the training split's counts) or "
        "{class: weight} (a class name, or an index; others weigh 1).",
    )
    cache: typing.Literal["auto", "memory", "disk", "none"] = Field(
        "auto",
        description="Where decoded, resized images (uint8) are kept after the "
        "first epoch; `auto`: memory when they need at most a quarter of the "
        "memory available, else disk.",
    )
    cache_dir: str | None = Field(
        None,
        description="Folder of the disk caches (images and stage-1 features); "
        "default `OUTPUT_DIR/cache`. A second run with the same data and model "
        "reuses what is there.",
    )
    shuffle_buffer: int = Field(
        1024,
        ge=1,
        description="Decoded images a streamed (`tfds:`) split is shuffled "
        "through; file and array splits shuffle indices, not images.",
    )
    deterministic: bool = Field(
        False,
        description="Keep the order of parallel decoding (reproducible batches, "
        "a little slower); the shuffle is seeded either way.",
    )
    data_dir: str | None = Field(
        None, description="tensorflow-datasets data_dir (tfds: URIs)."
    )
    download: bool = Field(True, description="Let tensorflow-datasets download.")

    @field_validator("mixup", "cutmix", mode="before")
    @classmethod
    def _switch(cls, value, info):
        return _section(value, MixUp if info.field_name == "mixup" else CutMix)

    @field_validator("class_weight", mode="before")
    @classmethod
    def _class_weight(cls, value):
        return _class_weight(value)

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri):
        from kerazoo.data.sources import parse_uri

        parse_uri(uri)
        return uri


class Head(_Strict):
    dropout: float = Field(0.2, ge=0, lt=1)
    initializer: typing.Literal[INITIALIZERS] = "xavier_uniform"


class Optimizer(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: typing.Literal[OPTIMIZERS]
    learning_rate: float | typing.Literal["auto"] = Field(
        description="A number > 0, or `auto`: the LR range test (`kerazoo "
        "lr-find`) runs when the stage starts and its suggestion is used (the "
        "report records it)."
    )

    @field_validator("learning_rate", mode="before")
    @classmethod
    def _rate(cls, value):
        if isinstance(value, str) and value != "auto":
            # YAML 1.1 reads `1e-3` (no dot) as a string.
            try:
                value = float(value)
            except ValueError:
                pass
        if value != "auto" and not (_number(value) and value > 0):
            raise ValueError("a number > 0, or 'auto' (the LR range test picks it)")
        return value

    @model_validator(mode="after")
    def _known_arguments(self):
        # Names and types from the catalog (no Keras); the values are checked
        # by the optimizer itself when the stage builds it.
        takes = catalog.optimizer_arguments(self.name)
        for key, value in (self.model_extra or {}).items():
            if key not in takes:
                raise ValueError(
                    f"{self.name} takes no argument {key!r}."
                    f"{did_you_mean(key, takes)} It takes: {', '.join(takes)}."
                )
            default = takes[key]
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ValueError(f"{key}: true or false, received {value!r}")
            elif isinstance(default, (int, float)) and not _number(value):
                raise ValueError(f"{key}: a number, received {value!r}")
        return self

    def as_dict(self):
        return self.model_dump()


class Constant(_Strict):
    name: typing.Literal["constant"]


class WarmupCosine(_Strict):
    name: typing.Literal["warmup_cosine"]
    warmup_epochs: float = Field(0.0, ge=0)
    final_learning_rate: float = Field(0.0, ge=0)


class OneCycle(_Strict):
    name: typing.Literal["one_cycle"]
    pct_start: float = Field(0.25, gt=0, lt=1)
    div_factor: float = Field(25.0, ge=1)
    final_div_factor: float = Field(1e4, ge=1)


class StepDecay(_Strict):
    name: typing.Literal["step_decay"]
    every_epochs: int = Field(ge=1)
    gamma: float = Field(0.1, gt=0, le=1)


Schedule = typing.Annotated[
    Constant | WarmupCosine | OneCycle | StepDecay,
    Field(discriminator="name"),
]


class EMA(_Strict):
    """An exponential moving average of the stage's weights, used for its
    validation, its best-epoch choice and its final weights
    (`kerazoo.finetune.ema`)."""

    decay: float = Field(
        0.999,
        gt=0,
        lt=1,
        description="Per step: average = decay x average + (1 - decay) x weights "
        "(spans about 1 / (1 - decay) steps).",
    )
    start_epoch: int = Field(
        0,
        ge=0,
        description="Epoch (from 0) whose start begins the average; earlier "
        "epochs validate and keep the raw weights.",
    )


# The optimizer's own EMA arguments: the stage's `ema` section sets them.
_OPTIMIZER_EMA_KEYS = ("use_ema", "ema_momentum", "ema_overwrite_frequency")


class EarlyStopping(_Strict):
    monitor: str = "val_accuracy"
    patience: int = Field(3, ge=1)


class Stage(_Strict):
    epochs: int = Field(ge=0)
    batch_size: int | None = Field(32, ge=1)
    batching: typing.Literal["minibatch", "example", "full"] = "minibatch"
    optimizer: Optimizer
    schedule: Schedule = Constant(name="constant")
    augment: bool = Field(
        True,
        description="Apply data.augment, data.mixup and data.cutmix in this stage.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Of the stage's categorical crossentropy (one-hot labels).",
    )
    early_stopping: EarlyStopping | None = None
    ema: EMA | None = Field(
        None,
        description="Weight EMA: `true` (decay 0.999 from epoch 0) or {decay, "
        "start_epoch}; validation, restore_best, model.keras and the export use "
        "the averaged weights.",
    )

    @field_validator("ema", mode="before")
    @classmethod
    def _ema(cls, value):
        return _section(value, EMA)

    @field_validator("ema")
    @classmethod
    def _ema_starts(cls, ema, info):
        epochs = info.data.get("epochs")
        if ema is not None and epochs and ema.start_epoch >= epochs:
            raise ValueError(
                f"start_epoch ({ema.start_epoch}) must be below the stage's epochs "
                f"({epochs}): the average would never start"
            )
        return ema

    @field_validator("optimizer")
    @classmethod
    def _no_optimizer_ema(cls, optimizer):
        given = [key for key in _OPTIMIZER_EMA_KEYS if key in optimizer.model_extra]
        if given:
            raise ValueError(
                f"{given[0]}: the weight average is set by the stage's `ema` "
                "section ({decay, start_epoch}), which also validates with it; "
                "remove the optimizer's EMA arguments"
            )
        return optimizer


class Stage1(Stage):
    epochs: int = Field(ge=0, description="0 skips stage 1 (training from scratch).")
    cache_features: bool = Field(
        True,
        description="Compute the frozen body's features once (when the stage has "
        "no augmentation).",
    )


class Stage2(Stage):
    unfreeze: int | str = Field(
        "all",
        description="`all`, the number of last body stages, or a regex on layer "
        "paths (`body/stage7/.*`).",
    )
    body_lr_multiplier: float | dict[str, float] = Field(
        1.0,
        description="The body's learning rate as a fraction of the head's (a "
        "factor >= 0, 0 freezes), or `{regex: factor}` over variable paths "
        "(`body/stage7/block1/depthwise/kernel`, `predictions/kernel`): each "
        "variable takes the factor of the first regex, in the recipe's order, "
        "that `re.match`es the start of its path, and 1 when none does.",
    )
    layer_decay: float | None = Field(
        None,
        gt=0,
        le=1,
        description="Layer-wise learning-rate decay (BEiT, timm): of the K body "
        "stages `stem` ... `top`, stage i (from 0) trains at "
        "`layer_decay ** (K - i)` times the head's rate, the head at 1; times a "
        "float `body_lr_multiplier`. Null: off.",
    )

    @field_validator("body_lr_multiplier", mode="before")
    @classmethod
    def _body_lr_multiplier(cls, value):
        if _number(value):
            if not 0 <= value < float("inf"):
                raise ValueError(f"a factor must be >= 0 (0 freezes), got {value}")
            return value
        if not isinstance(value, dict) or not value:
            raise ValueError(
                "a factor >= 0, or a non-empty mapping {regex: factor >= 0} over "
                'variable paths, e.g. {"body/stage7/.*": 0.5, "body/.*": 0.1}'
            )
        for pattern, factor in value.items():
            try:
                re.compile(pattern)
            except (re.error, TypeError) as error:
                raise ValueError(
                    f"key {pattern!r} is not a valid regular expression ({error})"
                ) from None
            if not _number(factor) or not 0 <= factor < float("inf"):
                raise ValueError(
                    f"the factor of {pattern!r} must be a number >= 0 (0 freezes), "
                    f"got {factor!r}"
                )
        return value

    @field_validator("layer_decay")
    @classmethod
    def _layer_decay(cls, value, info):
        if value is not None and isinstance(info.data.get("body_lr_multiplier"), dict):
            raise ValueError(
                "layer_decay sets a factor per body stage, but "
                "stage2.body_lr_multiplier is a mapping {regex: factor} that "
                "already sets them; use one of the two (layer_decay combines "
                "with a float body_lr_multiplier)"
            )
        return value

    @field_validator("unfreeze")
    @classmethod
    def _unfreeze(cls, value):
        if isinstance(value, int):
            if value < 1:
                raise ValueError(f"a number of stages must be >= 1, got {value}")
            return value
        if value != "all":
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(
                    f"'all', a number of stages or a regular expression; "
                    f"{value!r} is not a valid regex ({error})"
                ) from None
        return value


class Export(_Strict):
    name: str
    version: int | None = Field(None, ge=1)
    directory: str = "saved_models"
    # Batch norms folded into the convolutions before them (False: as trained).
    fold: bool = True
    # Weights as constants of the served graph (False: variables).
    freeze: bool = True
    # Also model.tflite / model_fp16.tflite / model_int8.tflite / model.onnx in
    # the version folder (extras).
    formats: list[typing.Literal["tflite", "tflite_fp16", "tflite_int8", "onnx"]] = (
        Field(default_factory=list)
    )
    # The most test accuracy a served format may lose against the Keras model
    # (0.01: one point); one that loses more is refused.
    max_accuracy_drop: float = Field(0.01, ge=0, le=1)
    # Training images tflite_int8 calibrates its activation ranges on.
    calibration_images: int = Field(200, ge=1)


class TTA(_Strict):
    """Test-time augmentation of the final test evaluation
    (`kerazoo.weights.tta`): the model's probabilities averaged over views."""

    flips: bool = Field(True, description="Each view also mirrored left to right.")
    crops: int = Field(
        0, ge=0, le=5, description="Crops: the center, then the four corners (0-5)."
    )
    scale: float = Field(
        0.875, gt=0, lt=1, description="Each crop's side over the image's."
    )

    @model_validator(mode="after")
    def _some_view(self):
        if not self.flips and not self.crops:
            raise ValueError(
                "flips false and crops 0 leave no view but the image itself; set "
                "flips: true or crops >= 1 (or tta: null)"
            )
        return self


class LearningRateRange(_Strict):
    min: float = Field(1e-4, gt=0)
    max: float = Field(1e-1, gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class MultiplierRange(_Strict):
    min: float = Field(gt=0)
    max: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self):
        if self.min >= self.max:
            raise ValueError(f"min ({self.min}) must be below max ({self.max})")
        return self


class Search(_Strict):
    """keras-tuner search of initializers and optimizers (`kerazoo tune
    RECIPE`). Without stage-2 choices each trial trains the new head on cached
    body features, as stage 1 does; with `unfreeze` or `body_lr_multiplier`
    choices, or stage1.epochs 0, each trial is a whole fine-tuning run of the
    recipe (and with weights: null the initializer draws every layer)."""

    oracle: typing.Literal["random", "bayesian", "hyperband"] = "random"
    objective: typing.Literal["val_accuracy", "val_loss"] = "val_accuracy"
    max_trials: int = Field(10, ge=1)
    executions_per_trial: int = Field(1, ge=1)
    epochs: int = Field(10, ge=1, description="Epochs per trial (hyperband: max).")
    initializers: list[typing.Literal[INITIALIZERS]] = Field(
        default_factory=lambda: list(INITIALIZERS), min_length=1
    )
    optimizers: list[typing.Literal[OPTIMIZERS]] = Field(
        default_factory=lambda: list(OPTIMIZERS), min_length=1
    )
    learning_rate: LearningRateRange = LearningRateRange()
    batch_sizes: list[int] | None = None
    unfreeze: list[int | str] | None = Field(
        None,
        min_length=1,
        description="Stage-2 unfreeze depths to choose from (numbers of last body "
        "stages, or `all`).",
    )
    body_lr_multiplier: MultiplierRange | None = Field(
        None, description="Stage-2 body learning-rate multiplier, log-uniform."
    )

    @field_validator("unfreeze")
    @classmethod
    def _depths(cls, values):
        for value in values or []:
            if not (value == "all" or (isinstance(value, int) and value >= 1)):
                raise ValueError(
                    f"each choice is `all` or a number of stages >= 1, got {value!r}"
                )
        return values

    @property
    def stage2_choices(self):
        return self.unfreeze is not None or self.body_lr_multiplier is not None


class Recipe(_Strict):
    name: str = "run"
    model: ModelSpec
    data: DataSpec = DataSpec()
    seed: int = 0
    head: Head = Head()
    stage1: Stage1
    stage2: Stage2
    batchnorm: typing.Literal["frozen", "train"] = Field(
        "frozen",
        description="Batch norm in stage 2: `frozen` keeps the pretrained "
        "statistics (inference mode), `train` updates them. Left out, it follows "
        "the body: `frozen` for pretrained weights, `train` for weights: null.",
    )
    distribution: typing.Literal["none", "mirrored", "data_parallel"] = Field(
        "none",
        description="`mirrored`: MirroredStrategy over this machine's GPUs "
        "(TensorFlow); `data_parallel`: Keras's DataParallel over every device "
        "of every process (JAX; docs/distributed.md).",
    )
    precision: typing.Literal["float32", "mixed_float16", "mixed_bfloat16", "auto"] = (
        Field(
            "float32",
            description="Keras dtype policy of the run; `auto`: mixed_float16 on a "
            "GPU of compute capability 7.0 or more, float32 otherwise.",
        )
    )
    baseline: typing.Literal["none", "scratch"] = Field(
        "none",
        description="`scratch`: after the run, train the same architecture from "
        "random weights on the same split, every layer for the epochs of both "
        "stages with stage 1's optimizer and schedule (`kerazoo.finetune."
        "scratch_recipe`), in OUTPUT_DIR/baseline_scratch; the report puts both "
        "test accuracies side by side (`baseline`).",
    )
    jit_compile: bool | typing.Literal["auto"] = Field(
        "auto",
        description="XLA compilation of the training and evaluation steps "
        "(`model.compile(jit_compile=...)`); `auto` is Keras's rule: on under "
        "JAX, and under TensorFlow when a GPU is found. The report records what "
        "each stage ran with.",
    )
    output_dir: str = "runs/run"
    restore_best: bool = Field(
        True,
        description="End each stage with the weights of its epoch of best "
        "val_accuracy (named in the report), so that model.keras and the export "
        "are the best epoch's; false keeps the last epoch's.",
    )
    tensorboard: bool = False
    export: Export | None = None
    search: Search | None = None
    tta: TTA | None = Field(
        None,
        description="Test-time augmentation of the final test evaluation: `true` "
        "(flips) or {flips, crops, scale}; the report gives the test accuracy "
        "with and without it (the top-level test_accuracy, model.keras and the "
        "export stay without).",
    )

    @field_validator("tta", mode="before")
    @classmethod
    def _tta(cls, value):
        return _section(value, TTA)

    @field_validator("distribution", mode="before")
    @classmethod
    def _supported_distribution(cls, value):
        if value == "multi_worker":
            raise ValueError(
                "multi_worker is gone: Keras 3's fit fails under "
                "tf.distribute.MultiWorkerMirroredStrategy ('Attempt to convert a "
                "value (PerReplica...)', keras-team/keras#20585, "
                "tensorflow/tensorflow#72388; reproduced with TensorFlow 2.21 and "
                "Keras 3.15); use 'data_parallel' (KERAS_BACKEND=jax) for several "
                "processes or machines, 'mirrored' for the GPUs of one machine"
            )
        return value

    @model_validator(mode="before")
    @classmethod
    def _no_debug_section(cls, data):
        # Recipes saved by kerazoo 0.x runs hold an empty `debug` section; the
        # fault injection it held is now the test-only KERAZOO_FAULT_NAN_BATCH.
        if isinstance(data, dict) and "debug" in data:
            debug = data["debug"]
            if debug and any(value is not None for value in dict(debug).values()):
                raise ValueError(
                    "debug: fault injection is not part of recipes; set the "
                    "environment variable KERAZOO_FAULT_NAN_BATCH=STAGE,BATCH"
                )
            data = {k: v for k, v in data.items() if k != "debug"}
        return data

    @model_validator(mode="before")
    @classmethod
    def _batchnorm_follows_the_body(cls, data):
        # A random body has no statistics worth freezing: frozen, its batch
        # norms would normalise with the initial mean 0 and variance 1.
        if isinstance(data, dict) and "batchnorm" not in data:
            model = data.get("model")
            if isinstance(model, ModelSpec):
                weights = model.weights
            elif isinstance(model, dict):
                weights = model.get("weights", "imagenet")
            else:
                return data
            data = {**data, "batchnorm": "frozen" if weights else "train"}
        return data

    @model_validator(mode="after")
    def _baseline_needs_pretrained_weights(self):
        if self.baseline == "scratch" and self.model.weights is None:
            raise ValueError(
                "baseline: scratch compares the run with the same network trained "
                "from random weights, but model.weights is null: the run is that "
                "baseline already"
            )
        return self

    @model_validator(mode="after")
    def _frozen_batchnorm_needs_pretrained_weights(self):
        if (
            self.batchnorm == "frozen"
            and self.model.weights is None
            and self.stage2.epochs
        ):
            raise ValueError(
                "batchnorm: frozen keeps the statistics of pretrained batch norms, "
                "but model.weights is null: the body's batch norms would normalise "
                "with their initial mean 0 and variance 1 and stage 2 would train "
                "at chance; use batchnorm: train (the default for weights: null)"
            )
        return self

    @model_validator(mode="after")
    def _searchable(self):
        search = self.search
        if search is None:
            return self
        for n in (1, 2):
            if getattr(self, f"stage{n}").optimizer.learning_rate == "auto":
                raise ValueError(
                    f"stage{n}.optimizer.learning_rate: auto runs the LR range "
                    "test, but a search draws its own learning rates "
                    "(search.learning_rate); give a number"
                )
        if search.stage2_choices and not self.stage2.epochs:
            raise ValueError(
                "search.unfreeze and search.body_lr_multiplier choose how stage 2 "
                "trains, but stage2.epochs is 0"
            )
        if search.body_lr_multiplier and isinstance(
            self.stage2.body_lr_multiplier, dict
        ):
            raise ValueError(
                "search.body_lr_multiplier draws one factor for the whole body, "
                "but stage2.body_lr_multiplier is a mapping of groups, which "
                "each trial would replace; drop one of the two"
            )
        full = search.stage2_choices or self.stage1.epochs == 0
        if full and search.oracle == "hyperband":
            raise ValueError(
                "search.oracle: hyperband sets each trial's epochs, but with "
                "stage-2 choices or stage1.epochs 0 each trial is a whole "
                "fine-tuning run whose epochs the recipe sets; use random or bayesian"
            )
        return self

    def to_dict(self):
        return self.model_dump(mode="json")

    def fingerprint(
        self,
        ignore=(
            "output_dir",
            "export",
            "tensorboard",
            "distribution",
            "search",
            "baseline",
        ),
    ):
        """sha256 of what decides the training (not where it is written, nor
        where its images are cached)."""
        data = {k: v for k, v in self.to_dict().items() if k not in ignore}
        if "data" in data:
            data["data"] = {
                k: v for k, v in data["data"].items() if k not in ("cache", "cache_dir")
            }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def _fields_at(loc):
    """The allowed keys of the model at a location of `Recipe`."""
    model = Recipe
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        annotation = field.annotation
        candidates = [annotation, *typing.get_args(annotation)]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
            None,
        )
        if model is None:
            return None
    return list(model.model_fields)


def _describe(error):
    loc = list(error["loc"])
    path = ".".join(str(p) for p in loc if p not in _UNION_TAGS)
    received = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at([p for p in loc[:-1] if p not in _UNION_TAGS])
        hint = did_you_mean(loc[-1], allowed or [], n=1, cutoff=0.6)
        return f"{path}: unknown key.{hint} Allowed keys: {', '.join(allowed or [])}"
    if kind == "missing":
        return f"{path}: required key is missing"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    expected = error.get("ctx", {}).get("expected")
    if expected and received is not None:
        hint = did_you_mean(received, re.findall(r"'([^']+)'", expected), n=1)
        if hint:
            message = message.rstrip(".") + "." + hint
    return f"{path}: received {received!r}; {message}"


_UNION_TAGS = {
    "constant",
    "warmup_cosine",
    "one_cycle",
    "step_decay",
    "int",
    "str",
    "tuple[int,int]",
}


def validate_recipe(data, source="recipe"):
    """Validates a recipe dict; raises `RecipeError` naming each bad key."""
    if not isinstance(data, dict):
        raise RecipeError(
            f"{source}: a recipe is a YAML mapping of keys; received "
            f"{type(data).__name__}"
        )
    try:
        return Recipe.model_validate(data)
    except ValidationError as error:
        lines = []
        for item in error.errors():
            line = _describe(item)
            if line not in lines:
                lines.append(line)
        raise RecipeError(
            f"{source} is not a valid recipe:\n  " + "\n  ".join(lines)
        ) from None


def apply_overrides(data, overrides):
    """Applies `key.path=value` strings (values parsed as YAML) to a dict."""
    data = json.loads(json.dumps(data))
    try:
        parsed = parse_overrides(overrides)
    except ValueError as error:
        raise RecipeError(str(error)) from None
    for (*sections, last), value in parsed:
        parts = [*sections, last]
        override = f"{'.'.join(parts)}={value!r}"
        node = data
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise RecipeError(
                    f"--set {override!r}: {'.'.join(parts[: i + 1])} is a value, "
                    "not a section"
                )
            node = child
        node[last] = value
    return data


def load_recipe(path, overrides=None):
    """Reads a YAML recipe, applies `--set` overrides and validates it.

    Args:
        path: The YAML file.
        overrides: `["key.path=value", ...]`.

    Returns:
        A `Recipe`.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise RecipeError(f"No recipe file at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise RecipeError(f"{path} is not valid YAML: {error}") from None
    if data is None:
        data = {}
    if isinstance(data, dict):
        data = apply_overrides(data, overrides)
    return validate_recipe(data, source=str(path))
