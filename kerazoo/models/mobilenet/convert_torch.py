"""torchvision's MobileNetV3 state dicts into kerazoo's MobileNetV3s.

torchvision (`torchvision.models.mobilenet_v3_large`, `mobilenet_v3_small`)
names them as its `nn.Sequential`s nest: the stem `features.0.0` (3x3/2
convolution) and `features.0.1` (batch norm), one `features.{i}` per
inverted residual (`i` from 1, through the network), whose `block.{k}.0` /
`.1` are the convolutions and batch norms in order (the 1x1 expansion, absent
when the block does not widen, the depthwise convolution, then the 1x1
projection), with `block.{k}.fc1` / `.fc2` (convolutions with bias) the
squeeze-excite between the depthwise and the projection; the last
`features.{n + 1}.0` / `.1` is the 1x1 convolution to six times the last
width (kerazoo's `top`), and the head is `classifier.0` (the `Linear` to
1280 or 1024 after the pooling, kerazoo's `"pre_logits"` Dense) and
`classifier.3` (the classifier).

Both compute kerazoo's function: batch norms with epsilon 1e-3 (kerazoo's
default), hard-swish `x * relu6(x + 3) / 6`, the squeeze-excite's ReLU and
hard-sigmoid gate `relu6(x + 3) / 6` (Keras 3's), its squeeze width
`make_divisible(expanded / 4, 8)`; the dropout is off at inference in both.
PyTorch pads every strided convolution (the stem's 3x3, the 3x3 and 5x5
depthwise ones) `k // 2` pixels on each side, where Keras's `"same"` pads
less before than after on an even side, so the model is built with
`padding="symmetric"` (the converter's `options`; a model built with
`"same"` is refused). Their weights expect ImageNet's mean and standard
deviation, the `"torch"` preprocessing, which loading sets.
"""

import re

from kerazoo.models.preprocessing import MODES
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import dense_kernel
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.convert import torch_batch_norm
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_depthwise
from kerazoo.weights.convert import torch_head

# torchvision's MobileNetV3 batch-norm epsilon.
_EPSILON = 1e-3
SIGNATURE = (
    "features.0.0.weight",
    "features.0.1.running_var",
    "features.1.block.0.0.weight",
    "classifier.0.weight",
    "classifier.3.weight",
)
_BLOCK_KEY = re.compile(r"features\.(\d+)\.block\.")


def _blocks(model):
    return [block for stage in body_stages(model) for block in stage_blocks(stage)]


def _conv_bn(conv, norm, key):
    return [
        *torch_conv(conv, f"{key}.0"),
        *torch_batch_norm(norm, f"{key}.1", _EPSILON),
    ]


def _block_ports(block, key):
    """The block's layers in torchvision's order, `block.0`, `block.1`, ..."""
    parts = []
    if block.expand is not None:
        parts.append(_conv_bn(block.expand, block.expand_norm, ""))
    parts.append(
        [
            *torch_depthwise(block.depthwise, ".0"),
            *torch_batch_norm(block.depthwise_norm, ".1", _EPSILON),
        ]
    )
    if block.se is not None:
        parts.append(
            [*torch_conv(block.se.reduce, ".fc1"), *torch_conv(block.se.expand, ".fc2")]
        )
    parts.append(_conv_bn(block.project, block.project_norm, ""))
    ports = []
    for k, part in enumerate(parts):
        for port in part:
            (suffix,) = port.sources
            sources = (f"{key}.block.{k}{suffix}",)
            ports.append(Port(port.target, sources, port.transform))
    return ports


class MobileNetV3TorchConverter(Converter):
    """torchvision's MobileNetV3 state dicts (module docstring) into kerazoo's
    `mobilenet_v3_small` and `mobilenet_v3_large`, built with
    `padding="symmetric"`.

    `create_model(name, weights="file.safetensors")` (or `.pth`) finds it from
    the file's names (`recognizes`), builds the model with its `options` and
    needs no `weights_map`; the file's number of blocks must be the model's
    (Small's 11, Large's 15) and its widths too (the shape check).
    """

    source = "torchvision_mobilenet_v3"
    models = ("mobilenet_v3_small", "mobilenet_v3_large")
    options = {"padding": "symmetric"}
    ignored = (r".*num_batches_tracked$",)

    def recognizes(self, source):
        """Whether `source`'s names are torchvision's MobileNetV3 names."""
        return all(key in source for key in SIGNATURE)

    def ports(self, model, source):
        blocks = _blocks(model)
        indices = {int(m[1]) for m in map(_BLOCK_KEY.match, source) if m}
        if len(indices) != len(blocks):
            raise WeightMismatchError(
                f"The source has {len(indices)} inverted-residual blocks, "
                f"{model.name!r} has {len(blocks)}: another MobileNetV3. "
                "Nothing was loaded."
            )
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        strided = [b for b in blocks if b.strides > 1]
        if any(b.padding != "symmetric" for b in strided) or not any(
            layer.name == "conv_pad" for layer in stem.layers
        ):
            raise WeightMismatchError(
                f"torchvision's {model.name} pads its strided convolutions "
                "k // 2 pixels on each side: build the model with "
                "padding='symmetric' (as create_model(name, weights=path) "
                "does). Nothing was loaded."
            )
        ports = _conv_bn(
            stem.get_layer("conv"), stem.get_layer("conv_bn"), "features.0"
        )
        for i, block in enumerate(blocks):
            ports += _block_ports(block, f"features.{i + 1}")
        ports += _conv_bn(
            top.get_layer("conv"),
            top.get_layer("conv_bn"),
            f"features.{len(blocks) + 1}",
        )
        return [
            *ports,
            # Part of the head: absent with include_top=False.
            Port(
                "pre_logits/kernel",
                ("classifier.0.weight",),
                dense_kernel,
                optional=True,
            ),
            Port("pre_logits/bias", ("classifier.0.bias",), optional=True),
            *torch_head("classifier.3"),
        ]

    def apply(self, model, source, *, head=True, origin="The source"):
        super().apply(model, source, head=head, origin=origin)
        preprocessing = model.get_layer("preprocessing")
        if preprocessing.mode != "torch":
            preprocessing.set_affine(*MODES["torch"][1:])
        return model
