"""torchvision's and timm's EfficientNet-B0-B7 state dicts into kerazoo's.

torchvision (`torchvision.models.efficientnet_b0` ... `efficientnet_b7`)
names them as its `nn.Sequential`s nest: the stem `features.0.0`
(convolution) and `features.0.1` (batch norm), the blocks of stage `i`
`features.{i + 1}.{j}.block.{k}`, each part a convolution `.0` and its batch
norm `.1` (the 1x1 expansion, the depthwise convolution, the projection) or
the squeeze-excite `.fc1`/`.fc2` (1x1 convolutions with biases); the first
stage's blocks have no expansion, so their parts are `block.0` to `block.2`
where the others' are `block.0` to `block.3`. The head is `features.8.0` /
`.1` (1x1 convolution, batch norm) and `classifier.1` (`Linear`).

timm (`timm.create_model("efficientnet_b0")`, the `model.safetensors` of a
`timm/efficientnet_b0.*` repository) names them `conv_stem`, `bn1`,
`blocks.{i}.{j}.conv_dw`, `.bn1`, `.se.conv_reduce`, `.se.conv_expand`,
`.conv_pw`, `.bn2` (stage 0's depthwise-separable blocks) or `.conv_pw`,
`.bn1`, `.conv_dw`, `.bn2`, `.se.*`, `.conv_pwl`, `.bn3` (the inverted
residuals), `conv_head`, `bn2` and `classifier`.

Both compute kerazoo's function with swish (SiLU), the squeeze-excite sized
from the block's input channels and PyTorch's symmetric padding of the
strided convolutions (`kernel // 2` on every side), which needs the model
built with `padding="symmetric"`, as `create_model(name,
weights="x.safetensors")` does from the converter's `options`; a model built
with `padding="same"` is refused. Their batch norms have epsilon 1e-5
(torchvision's B5-B7 1e-3): the model is built with `norm_epsilon=1e-5` and
the B5-B7 variances are moved by the difference. Their weights expect
ImageNet's mean and standard deviation, the family's `"torch"`
preprocessing, which loading keeps (or sets). timm's `tf_efficientnet_*`
files have timm's names but TensorFlow's padding and epsilon: they load, but
compute another function.
"""

import re

from kerazoo.models.preprocessing import MODES
from kerazoo.weights.assign import WeightMismatchError
from kerazoo.weights.convert import Converter
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.convert import torch_batch_norm
from kerazoo.weights.convert import torch_conv
from kerazoo.weights.convert import torch_depthwise
from kerazoo.weights.convert import torch_head

MODELS = tuple(f"efficientnet_b{i}" for i in range(8))
# PyTorch's default batch-norm epsilon; torchvision's B5-B7 (ported from
# TensorFlow) keep TensorFlow's.
_EPSILON = 1e-5
_TORCHVISION_EPSILON = {f"efficientnet_b{i}": 1e-3 for i in (5, 6, 7)}


class _Naming:
    """One library's names of an EfficientNet's tensors, by stage `i` (0-6)
    and block `j` (0-based)."""

    def __init__(self, library, signature, block_key, stem, top, head, block):
        self.library = library
        self.signature = signature
        # A block's first key; its groups: the stage's index, the block's.
        self.block_key = re.compile(block_key)
        self.stem = stem
        self.top = top
        self.head = head
        # (i, j, expanded) -> {part: key}.
        self.block = block


def _torchvision_block(i, j, expanded):
    key = f"features.{i + 1}.{j}.block"
    parts = ("expand", "depthwise", "se", "project")[0 if expanded else 1 :]
    keys = {part: f"{key}.{k}" for k, part in enumerate(parts)}
    keys["se_reduce"], keys["se_expand"] = f"{keys['se']}.fc1", f"{keys['se']}.fc2"
    for part in ("expand", "depthwise", "project"):
        if part in keys:
            keys[f"{part}_bn"] = f"{keys[part]}.1"
            keys[part] = f"{keys[part]}.0"
    return keys


def _timm_block(i, j, expanded):
    key = f"blocks.{i}.{j}"
    keys = {
        "se_reduce": f"{key}.se.conv_reduce",
        "se_expand": f"{key}.se.conv_expand",
    }
    if expanded:
        parts = ("conv_pw", "bn1", "conv_dw", "bn2", "conv_pwl", "bn3")
        names = ("expand", "expand_bn", "depthwise", "depthwise_bn")
    else:
        parts = ("conv_dw", "bn1", "conv_pw", "bn2")
        names = ("depthwise", "depthwise_bn")
    names = (*names, "project", "project_bn")
    keys.update(
        {name: f"{key}.{part}" for name, part in zip(names, parts, strict=True)}
    )
    return keys


TORCHVISION = _Naming(
    "torchvision",
    signature=(
        "features.0.0.weight",
        "features.0.1.running_var",
        "features.1.0.block.0.0.weight",
        "features.1.0.block.1.fc1.weight",
    ),
    block_key=r"features\.(\d+)\.(\d+)\.block\.0\.0\.weight$",
    stem=("features.0.0", "features.0.1"),
    top=("features.8.0", "features.8.1"),
    head="classifier.1",
    block=_torchvision_block,
)
TIMM = _Naming(
    "timm",
    signature=(
        "conv_stem.weight",
        "bn1.running_var",
        "blocks.0.0.conv_dw.weight",
        "blocks.0.0.se.conv_reduce.weight",
    ),
    block_key=r"blocks\.(\d+)\.(\d+)\.conv_dw\.weight$",
    stem=("conv_stem", "bn1"),
    top=("conv_head", "bn2"),
    head="classifier",
    block=_timm_block,
)
NAMINGS = (TORCHVISION, TIMM)


def naming_of(source):
    """The `_Naming` whose names `source` has, or None."""
    for naming in NAMINGS:
        if all(key in source for key in naming.signature):
            return naming
    return None


def _depths(source, naming):
    counts = {}
    offset = 1 if naming is TORCHVISION else 0
    for key in source:
        match = naming.block_key.match(key)
        if match:
            stage, block = int(match[1]) - offset, int(match[2])
            counts[stage] = max(counts.get(stage, 0), block + 1)
    return tuple(counts.get(i, 0) for i in range(max(counts, default=-1) + 1))


def _block_ports(block, keys, epsilon):
    ports = []
    if block.expand is not None:
        ports += torch_conv(block.expand, keys["expand"])
        ports += torch_batch_norm(block.expand_norm, keys["expand_bn"], epsilon)
    ports += torch_depthwise(block.depthwise, keys["depthwise"])
    ports += torch_batch_norm(block.depthwise_norm, keys["depthwise_bn"], epsilon)
    ports += torch_conv(block.se.reduce, keys["se_reduce"])
    ports += torch_conv(block.se.expand, keys["se_expand"])
    ports += torch_conv(block.project, keys["project"])
    return ports + torch_batch_norm(block.project_norm, keys["project_bn"], epsilon)


class EfficientNetTorchConverter(Converter):
    """torchvision's and timm's EfficientNet state dicts (module docstring)
    into kerazoo's `efficientnet_b0` ... `efficientnet_b7`, built with
    `padding="symmetric"` (PyTorch's padding) and `norm_epsilon=1e-5`.

    `create_model(name, weights="file.safetensors")` (or `.pth`) finds it from
    the file's names (`recognizes`), builds the model with its `options` and
    needs no `weights_map`; the model's blocks per stage must be the file's
    (B0's 1, 2, 2, 3, 3, 4, 1, ...) and its widths too (the shape check).
    """

    source = "torch_efficientnet"
    models = MODELS
    options = {"padding": "symmetric", "norm_epsilon": _EPSILON}
    ignored = (r".*num_batches_tracked$",)

    def recognizes(self, source):
        """Whether `source`'s names are torchvision's or timm's EfficientNet
        names."""
        return naming_of(source) is not None

    def ports(self, model, source):
        naming = naming_of(source)
        if naming is None:
            raise WeightMismatchError(
                "The source has neither torchvision's EfficientNet names "
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
                f"stage, {model.name!r} has {ours}: another EfficientNet. "
                "Nothing was loaded."
            )
        body = model.get_layer("body")
        stem, top = body.get_layer("stem"), body.get_layer("top")
        padding = [b.padding for stage in blocks for b in stage]
        if stem.get_layer("conv").padding != "valid" or {*padding} != {"symmetric"}:
            raise WeightMismatchError(
                f"{naming.library}'s {model.name} pad their strided "
                "convolutions kernel // 2 pixels on each side: build the model "
                "with padding='symmetric' (as create_model(name, weights=path) "
                f"does). Received: padding={padding[0]!r}"
            )
        epsilon = _EPSILON
        if naming is TORCHVISION:
            epsilon = _TORCHVISION_EPSILON.get(model.name, _EPSILON)
        conv, norm = naming.stem
        ports = [
            *torch_conv(stem.get_layer("conv"), conv),
            *torch_batch_norm(stem.get_layer("conv_bn"), norm, epsilon),
        ]
        for i, stage in enumerate(blocks):
            for j, block in enumerate(stage):
                keys = naming.block(i, j, block.expand is not None)
                ports += _block_ports(block, keys, epsilon)
        conv, norm = naming.top
        ports += torch_conv(top.get_layer("conv"), conv)
        ports += torch_batch_norm(top.get_layer("conv_bn"), norm, epsilon)
        return [*ports, *torch_head(naming.head)]

    def apply(self, model, source, *, head=True, origin="The source"):
        super().apply(model, source, head=head, origin=origin)
        preprocessing = model.get_layer("preprocessing")
        if preprocessing.mode != "torch":
            preprocessing.set_affine(*MODES["torch"][1:])
        return model
