"""torchvision's and timm's ConvNeXt state dicts into kerazoo's ConvNeXts.

torchvision (`torchvision.models.convnext_tiny` ... `convnext_large`) names
them as its `nn.Sequential`s nest: the stem `features.0.0` (4x4/4
convolution) and `features.0.1` (LayerNorm2d), the stages' blocks
`features.{1,3,5,7}.{j}.block.{0,2,3,5}` (7x7 depthwise convolution, layer
norm, the MLP's two `Linear`s) with `features.{k}.{j}.layer_scale` of shape
`(C, 1, 1)`, the downsamplers `features.{2,4,6}.0` (LayerNorm2d) and `.1`
(2x2/2 convolution), and the head `classifier.0` (LayerNorm2d after the
pooling) and `classifier.2` (`Linear`).

timm (`timm.create_model("convnext_tiny")`, the `model.safetensors` of a
`timm/convnext_tiny.*` repository) names them `stem.0`, `stem.1`,
`stages.{i}.downsample.0/.1` (stages 1-3), `stages.{i}.blocks.{j}.conv_dw`,
`.norm`, `.mlp.fc1`, `.mlp.fc2` and `.gamma` (shape `(C,)`), `head.norm` and
`head.fc`.

Both compute kerazoo's function: every layer norm has epsilon 1e-6 (as
kerazoo's ConvNeXts), the GELU is the exact (erf) one, the depthwise
convolution pads 3 pixels on every side (Keras's `"same"` for a 7x7 kernel at
stride 1) and the strided convolutions pad nothing (`"valid"`); the head's
layer norm comes after the global average pooling, as kerazoo's `top`. Their
weights expect ImageNet's mean and standard deviation, the family's `"torch"`
preprocessing, which loading keeps (or sets).
"""

import re

import numpy as np

from kerazoo.models.preprocessing import MODES
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.convert import TORCH_NAMES
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import Port
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_dense
from kerazoo.weights.convert import torch_depthwise
from kerazoo.weights.convert import torch_head

VARIANTS = ("tiny", "small", "base", "large")


class _Naming:
    """One library's names of a ConvNeXt's tensors, by stage `i` (0-3) and
    block `j` (0-based)."""

    def __init__(
        self, library, signature, block_key, stage, stem, downsample, block, head
    ):
        self.library = library
        self.signature = signature
        # A block's first key; its groups: the stage's index, the block's.
        self.block_key = re.compile(block_key)
        self.stage = stage
        self.stem = stem
        self.downsample = downsample
        self.block = block
        self.head = head


TORCHVISION = _Naming(
    "torchvision",
    signature=(
        "features.0.0.weight",
        "features.0.1.weight",
        "features.1.0.block.0.weight",
        "features.1.0.layer_scale",
    ),
    block_key=r"features\.(\d+)\.(\d+)\.block\.0\.weight$",
    # features.{2i + 1}: the blocks of stage i.
    stage=lambda index: (index - 1) // 2,
    stem=("features.0.0", "features.0.1"),
    downsample=lambda i: (f"features.{2 * i}.0", f"features.{2 * i}.1"),
    block=lambda i, j: {
        "depthwise": f"features.{2 * i + 1}.{j}.block.0",
        "norm": f"features.{2 * i + 1}.{j}.block.2",
        "expand": f"features.{2 * i + 1}.{j}.block.3",
        "project": f"features.{2 * i + 1}.{j}.block.5",
        "gamma": f"features.{2 * i + 1}.{j}.layer_scale",
    },
    head=("classifier.0", "classifier.2"),
)
TIMM = _Naming(
    "timm",
    signature=(
        "stem.0.weight",
        "stem.1.weight",
        "stages.0.blocks.0.conv_dw.weight",
        "stages.0.blocks.0.mlp.fc1.weight",
    ),
    block_key=r"stages\.(\d+)\.blocks\.(\d+)\.conv_dw\.weight$",
    stage=lambda index: index,
    stem=("stem.0", "stem.1"),
    downsample=lambda i: (f"stages.{i}.downsample.0", f"stages.{i}.downsample.1"),
    block=lambda i, j: {
        "depthwise": f"stages.{i}.blocks.{j}.conv_dw",
        "norm": f"stages.{i}.blocks.{j}.norm",
        "expand": f"stages.{i}.blocks.{j}.mlp.fc1",
        "project": f"stages.{i}.blocks.{j}.mlp.fc2",
        "gamma": f"stages.{i}.blocks.{j}.gamma",
    },
    head=("head.norm", "head.fc"),
)
NAMINGS = (TORCHVISION, TIMM)


def layer_scale(value):
    """torchvision's layer scale, `(C, 1, 1)`, as kerazoo's `(C,)` (timm's
    is `(C,)` already); any other shape unchanged, for the shape check to
    name."""
    value = np.asarray(value)
    if value.ndim > 1 and all(n == 1 for n in value.shape[1:]):
        return np.reshape(value, value.shape[:1])
    return value


def torch_layer_norm(layer, key):
    """Ports of a layer norm from PyTorch's `{key}.weight` and `{key}.bias`
    (`nn.LayerNorm` or a LayerNorm2d)."""
    return [Port(v.path, (f"{key}.{TORCH_NAMES[v.name]}",)) for v in layer.weights]


def naming_of(source):
    """The `_Naming` whose names `source` has, or None."""
    for naming in NAMINGS:
        if all(key in source for key in naming.signature):
            return naming
    return None


def _depths(source, naming):
    counts = {}
    for key in source:
        match = naming.block_key.match(key)
        if match:
            stage, block = naming.stage(int(match[1])), int(match[2])
            counts[stage] = max(counts.get(stage, 0), block + 1)
    return tuple(counts.get(i, 0) for i in range(max(counts, default=-1) + 1))


def _block_ports(block, keys):
    ports = [
        *torch_depthwise(block.depthwise, keys["depthwise"]),
        *torch_layer_norm(block.norm, keys["norm"]),
        *torch_dense(block.expand, keys["expand"]),
        *torch_dense(block.project, keys["project"]),
    ]
    if block.gamma is not None:
        ports.append(Port(block.gamma.path, (keys["gamma"],), layer_scale))
    return ports


class ConvNeXtTorchConverter(Converter):
    """torchvision's and timm's ConvNeXt state dicts (module docstring) into
    kerazoo's `convnext_tiny` ... `convnext_large`.

    `create_model(name, weights="file.safetensors")` (or `.pth`) finds it from
    the file's names (`recognizes`) and needs no `weights_map`; the model's
    depths must be the file's (Tiny's 3, 3, 9, 3 or the others' 3, 3, 27, 3)
    and its widths too (the shape check).
    """

    source = "torch_convnext"
    models = tuple(f"convnext_{variant}" for variant in VARIANTS)

    def recognizes(self, source):
        """Whether `source`'s names are torchvision's or timm's ConvNeXt
        names."""
        return naming_of(source) is not None

    def ports(self, model, source):
        naming = naming_of(source)
        if naming is None:
            raise WeightMismatchError(
                "The source has neither torchvision's ConvNeXt names "
                f"({', '.join(TORCHVISION.signature)}) nor timm's "
                f"({', '.join(TIMM.signature)}). Nothing was loaded."
            )
        stages = body_stages(model)
        blocks = [stage_blocks(stage) for stage in stages]
        ours = tuple(len(b) for b in blocks)
        theirs = _depths(source, naming)
        if theirs != ours:
            raise WeightMismatchError(
                f"The source ({naming.library} names) has {theirs} blocks per "
                f"stage, {model.name!r} has {ours}: another ConvNeXt. Nothing "
                "was loaded."
            )
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        conv, norm = naming.stem
        ports = [
            *torch_conv(stem.get_layer("conv"), conv),
            *torch_layer_norm(stem.get_layer("norm"), norm),
        ]
        for i, stage in enumerate(stages):
            if i > 0:
                norm, conv = naming.downsample(i)
                ports += torch_layer_norm(stage.get_layer("downsample_norm"), norm)
                ports += torch_conv(stage.get_layer("downsample_conv"), conv)
            for j, block in enumerate(blocks[i]):
                ports += _block_ports(block, naming.block(i, j))
        norm, head = naming.head
        ports += torch_layer_norm(top.get_layer("norm"), norm)
        return [*ports, *torch_head(head)]

    def apply(self, model, source, *, head=True, origin="The source"):
        super().apply(model, source, head=head, origin=origin)
        preprocessing = model.get_layer("preprocessing")
        if preprocessing.mode != "torch":
            preprocessing.set_affine(*MODES["torch"][1:])
        return model
