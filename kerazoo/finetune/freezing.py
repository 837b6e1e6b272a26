"""Which parts of a body train: freezing, unfreezing, the batch-norm policy."""

import re

import keras

from kerazoo import layers as kz_layers
from kerazoo._compat import sublayers

BATCH_NORMS = (keras.layers.BatchNormalization, kz_layers.BatchNormalization)


def body_stages(body):
    """The body's nested stage models, in order (`stem`, `stage1`, ..., `top`)."""
    return [layer for layer in body.layers if isinstance(layer, keras.Model)]


def freeze(body):
    """Stage 1: nothing in the body trains (batch norm then runs in inference
    mode in Keras 3 and in kerazoo)."""
    body.trainable = False


def unfreeze(body, spec, batchnorm="frozen"):
    """Stage 2: unfreezes the body as a recipe's `stage2.unfreeze` says.

    Args:
        body: The `"body"` model.
        spec: `"all"`; an int N, the last N of `body_stages(body)`; or a regex
            matched (`re.match`) against variable paths (`body/stage7/...`): a
            layer trains when one of its own weights matches.
        batchnorm: `"frozen"` keeps every batch-norm layer in inference mode
            with its statistics fixed; `"train"` lets unfrozen ones train.

    Returns:
        The names of the body's weights that will train.
    """
    body.trainable = True
    if spec == "all":
        pass
    elif isinstance(spec, int):
        stages = body_stages(body)
        if spec > len(stages):
            raise ValueError(
                f"stage2.unfreeze={spec}, but the body has {len(stages)} stages "
                f"({', '.join(s.name for s in stages)})"
            )
        for stage in stages[: len(stages) - spec]:
            stage.trainable = False
    else:
        pattern = re.compile(spec)
        leaves = [layer for layer in sublayers(body) if not sublayers(layer)]
        matched = False
        for layer in leaves:
            hit = any(pattern.match(w.path) for w in layer.weights)
            layer.trainable = hit
            matched = matched or hit
        if not matched:
            paths = [w.path for w in body.weights]
            raise ValueError(
                f"stage2.unfreeze={spec!r} matches no weight of the body; its paths "
                f"look like {', '.join(paths[:3])} ... {paths[-1]}"
            )
    if batchnorm == "frozen":
        for layer in sublayers(body):
            if isinstance(layer, BATCH_NORMS):
                layer.trainable = False
    return [w.path for w in body.trainable_weights]


def lr_multipliers(body, multiplier=1.0, layer_decay=None):
    """The `lr_multipliers` (`{regex: factor}`) of a recipe's stage 2.

    Args:
        body: The `"body"` model, already unfrozen as stage 2 trains it.
        multiplier: `stage2.body_lr_multiplier`: a factor for the whole body,
            or a mapping `{regex: factor}` over variable paths, returned as it
            is (the optimizer gives each variable the factor of the first
            regex that `re.match`es its path, 1 when none does).
        layer_decay: `stage2.layer_decay`, None for off; needs a float
            `multiplier`. Of the K stages of `body_stages(body)`, stage i (from
            0, the stem) gets `multiplier * layer_decay ** (K - i)`: the last
            gets `layer_decay`, the head (not in the body) 1. One regex per
            stage with a trainable weight, anchored on the stage's path prefix
            (`body/stage3/`), so that the exponents do not depend on how many
            stages `unfreeze` left frozen; body weights outside the stages
            get `multiplier`.

    Returns:
        The dict, or None when every factor is 1.
    """
    if isinstance(multiplier, dict):
        if layer_decay is not None:
            raise ValueError(
                "stage2.layer_decay needs a float stage2.body_lr_multiplier; "
                f"Received: body_lr_multiplier={multiplier!r}"
            )
        return dict(multiplier)
    multiplier = float(multiplier)
    if layer_decay is None:
        return None if multiplier == 1 else {f"{body.name}/": multiplier}
    stages = body_stages(body)
    factors = {}
    staged = set()
    for i, stage in enumerate(stages):
        prefix = f"{body.name}/{stage.name}/"
        paths = [w.path for w in stage.weights]
        outside = [p for p in paths if not p.startswith(prefix)]
        if outside:
            raise ValueError(
                f"stage2.layer_decay: the weights of body stage {stage.name!r} "
                f"should have paths starting {prefix!r}, but {outside[0]!r} "
                "does not (a nested model keeps its path prefix only as a "
                "`kerazoo.models.ScopedModel`)"
            )
        staged.update(paths)
        if stage.trainable_weights:
            factor = multiplier * layer_decay ** (len(stages) - i)
            # 12 digits: 0.49, not 0.48999999999999994, in the log and report.
            factors[re.escape(prefix)] = float(f"{factor:.12g}")
    if any(w.path not in staged for w in body.trainable_weights) and multiplier != 1:
        factors[f"{body.name}/"] = multiplier
    return factors if any(f != 1 for f in factors.values()) else None


def describe_multipliers(multipliers):
    """A short text of an `lr_multipliers` dict for the log: its first and
    last groups and how many there are."""
    if not multipliers:
        return "every weight x1"
    items = [f"{pattern} x{factor:.3g}" for pattern, factor in multipliers.items()]
    if len(items) > 3:
        items = [items[0], "...", items[-1]]
    more = f" ({len(multipliers)} groups)" if len(multipliers) > 3 else ""
    return ", ".join(items) + more
