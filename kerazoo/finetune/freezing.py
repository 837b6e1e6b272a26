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
