"""torchvision's and timm's ResNet state dicts into kerazoo's ResNets.

Both name a ResNet's tensors the same way: `conv1`, `bn1`, then
`layer{1..4}.{j}.conv{1,2,3}` / `bn{1,2,3}` (three in a bottleneck block,
two in a basic one), `layer{k}.0.downsample.0` / `.1` (the 1x1 projection
and its batch norm) and `fc`. Their ResNet-50/101/152 stride in the 3x3
convolution ("v1.5", kerazoo's default `stride_on="3x3"`), their batch norms
use epsilon 1e-5 and their weights expect torchvision's ImageNet mean and
standard deviation, which loading sets on the model's preprocessing.

PyTorch pads each stride-2 3x3 convolution one pixel on every side
(`padding=1`), where Keras's `"same"` pads nothing before and one pixel
after on an even side, sampling the image one pixel apart. The weights
therefore need the blocks built with `padding="symmetric"` (an explicit
`ZeroPadding2D(1)`, then a `"valid"` convolution; the same variables), which
`create_model(name, weights="x.safetensors")` does from the converter's
`options`; the model then computes torch's function at every image size. A
model built with `padding="same"` is refused. (The stem's 7x7 convolution and
max pool pad symmetrically in every kerazoo ResNet; the 1x1 stride-2
projections sample pixels 0, 2, 4, ... as torch's do with `padding=0`.)
"""

import re

from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.convert import torch_batch_norm
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_head

# torchvision's and timm's batch-norm epsilon (PyTorch's default).
_EPSILON = 1e-5
# Keys every torchvision/timm ResNet state dict has.
_SIGNATURE = ("conv1.weight", "bn1.running_var", "layer1.0.conv1.weight")
_STAGE_KEY = re.compile(r"layer(\d+)\.(\d+)\.")
# torchvision's ImageNet normalisation, as the model's preprocessing applies
# it to raw 0-255 RGB: x * scale + offset.
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)
_SCALE = tuple(1 / (255 * s) for s in _STD)
_OFFSET = tuple(-m / s for m, s in zip(_MEAN, _STD, strict=True))


class ResNetTorchConverter(Converter):
    """torchvision/timm ResNet state dicts (`conv1`, `bn1`,
    `layer{k}.{j}.conv{i}`, `downsample.0/.1`, `fc`) into kerazoo's
    `resnet18` ... `resnet152`, built with `stride_on="3x3"` (the default) and
    `padding="symmetric"` (PyTorch's padding).

    `create_model(name, weights="file.safetensors")` (or `.pth`) finds it from
    the file's names (`recognizes`), builds the model with its `options`, and
    needs no `weights_map`.
    """

    source = "torchvision_resnet"
    models = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
    options = {"stride_on": "3x3", "padding": "symmetric"}
    ignored = (r".*num_batches_tracked$",)

    def recognizes(self, source):
        """Whether `source`'s names are torchvision's/timm's ResNet names."""
        return all(key in source for key in _SIGNATURE)

    def ports(self, model, source):
        stages = body_stages(model)
        blocks = [stage_blocks(stage) for stage in stages]
        counts = {}
        for key in source:
            match = _STAGE_KEY.match(key)
            if match:
                stage, block = int(match[1]), int(match[2])
                counts[stage] = max(counts.get(stage, 0), block + 1)
        ours = tuple(len(b) for b in blocks)
        theirs = tuple(counts.get(k + 1, 0) for k in range(max([len(ours), *counts])))
        if theirs != ours:
            raise WeightMismatchError(
                f"The source has {theirs} blocks per stage, {model.name!r} has "
                f"{ours}: another depth. Nothing was loaded."
            )
        stem = model.get_layer("body").get_layer("stem")
        ports = [
            *torch_conv(stem.get_layer("conv1"), "conv1"),
            *torch_batch_norm(stem.get_layer("conv1_bn"), "bn1", epsilon=_EPSILON),
        ]
        for k, stage in enumerate(blocks):
            for j, block in enumerate(stage):
                if block.kind == "bottleneck" and block.stride_on != "3x3":
                    raise WeightMismatchError(
                        f"torchvision's and timm's {model.name} stride in the "
                        "3x3 convolution: build the model with stride_on='3x3'. "
                        f"Received: stride_on={block.stride_on!r}"
                    )
                if block.padding != "symmetric":
                    raise WeightMismatchError(
                        f"torchvision's and timm's {model.name} pad their "
                        "stride-2 3x3 convolutions one pixel on each side: "
                        "build the model with padding='symmetric' (as "
                        "create_model(name, weights=path) does). Received: "
                        f"padding={block.padding!r}"
                    )
                key = f"layer{k + 1}.{j}"
                pairs = zip(block.convs, block.norms, strict=True)
                for i, (conv, norm) in enumerate(pairs):
                    ports += torch_conv(conv, f"{key}.conv{i + 1}")
                    ports += torch_batch_norm(norm, f"{key}.bn{i + 1}", _EPSILON)
                if block.projection is not None:
                    ports += torch_conv(block.projection, f"{key}.downsample.0")
                    ports += torch_batch_norm(
                        block.projection_norm, f"{key}.downsample.1", _EPSILON
                    )
        return [*ports, *torch_head("fc")]

    def apply(self, model, source, *, head=True, origin="The source"):
        super().apply(model, source, head=head, origin=origin)
        model.get_layer("preprocessing").set_affine(_SCALE, _OFFSET)
        return model
