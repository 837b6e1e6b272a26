"""torchvision's and timm's ConvNeXt names: `create_model("convnext_tiny",
weights="model.safetensors")` with no map
(`kerazoo.models.convnext.convert_torch`).

Without torch: a kerazoo ConvNeXt-Tiny's own weights, written with
`safetensors.numpy` in torchvision's names and layouts, load back exactly; a
file missing a tensor, with one of another shape or with another depth loads
nothing. With torch: a ConvNeXt-Tiny with torchvision's architecture and
state-dict names, written here with `torch.nn`, its state dict saved with
`safetensors.torch` (and renamed to timm's names), gives the same logits in
kerazoo.
"""

import re

import keras
import numpy as np
import pytest
import safetensors.numpy

from kerazoo.models import create_model
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.convert import TORCH_NAMES
from kerazoo.weights.torch_files import load_torch_file

SIDE = 64
CLASSES = 10
DEPTHS = (3, 3, 9, 3)
WIDTHS = (96, 192, 384, 768)
# kerazoo's block children and torchvision's indices in `block`.
_BLOCK = {
    "depthwise_conv": "block.0",
    "layernorm": "block.2",
    "pointwise_conv_1": "block.3",
    "pointwise_conv_2": "block.5",
}


def torchvision_name(path):
    """torchvision's state-dict name of a kerazoo ConvNeXt variable."""
    *scope, name = path.split("/")
    if scope == ["predictions"]:
        return f"classifier.2.{TORCH_NAMES[name]}"
    if scope == ["body", "top", "norm"]:
        return f"classifier.0.{TORCH_NAMES[name]}"
    if scope[1] == "stem":
        return f"features.0.{'0' if scope[2] == 'conv' else '1'}.{TORCH_NAMES[name]}"
    stage = int(scope[1][5:]) - 1
    if scope[2].startswith("downsample"):
        index = "0" if scope[2] == "downsample_norm" else "1"
        return f"features.{2 * stage}.{index}.{TORCH_NAMES[name]}"
    block = f"features.{2 * stage + 1}.{int(scope[2][5:]) - 1}"
    if name == "layer_scale":
        return f"{block}.layer_scale"
    return f"{block}.{_BLOCK[scope[3]]}.{TORCH_NAMES[name]}"


def torch_layout(path, value):
    if path.endswith("depthwise_conv/kernel"):
        return value.transpose(2, 3, 0, 1)  # (kh, kw, C, 1) -> (C, 1, kh, kw)
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)  # HWIO -> OIHW
    if value.ndim == 2:
        return value.T
    if path.endswith("layer_scale"):
        return value.reshape(-1, 1, 1)
    return value


_TIMM_HEAD = {"0": "head.norm", "2": "head.fc"}


def timm_name(key):
    """timm's name of a torchvision ConvNeXt state-dict name."""
    parts = key.split(".")
    if parts[0] == "classifier":
        return f"{_TIMM_HEAD[parts[1]]}.{parts[2]}"
    index = int(parts[1])
    if index == 0:
        return f"stem.{parts[2]}.{parts[3]}"
    if index % 2 == 0:
        return f"stages.{index // 2}.downsample.{parts[2]}.{parts[3]}"
    block = f"stages.{(index - 1) // 2}.blocks.{parts[2]}"
    if parts[3] == "layer_scale":
        return f"{block}.gamma"
    layer = {"0": "conv_dw", "2": "norm", "3": "mlp.fc1", "5": "mlp.fc2"}[parts[4]]
    return f"{block}.{layer}.{parts[5]}"


def timm_state(state):
    """A torchvision ConvNeXt state dict in timm's names, with timm's `(C,)`
    layer scales."""
    return {
        timm_name(key): value.reshape(-1) if key.endswith("layer_scale") else value
        for key, value in state.items()
    }


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A kerazoo ConvNeXt-Tiny with every variable away from its initial
    value, its state dict in torchvision's names and layouts, and the file."""
    keras.utils.set_random_seed(1)
    model = create_model("convnext_tiny", CLASSES, input_shape=(SIDE, SIDE, 3))
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith(("gamma", "beta", "layer_scale", "bias")):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    values = _values(model)
    state = {
        torchvision_name(p): np.ascontiguousarray(torch_layout(p, a))
        for p, a in values.items()
    }
    path = tmp_path_factory.mktemp("convnext") / "convnext_tiny.safetensors"
    safetensors.numpy.save_file(state, str(path))
    return values, state, path


@pytest.fixture(scope="module")
def target():
    """A ConvNeXt-Tiny shared by the refusals: each checks that it keeps its
    weights."""
    return create_model("convnext_tiny", CLASSES, input_shape=(SIDE, SIDE, 3))


@pytest.mark.parametrize("names", ["torchvision", "timm"])
def test_loads_torch_names_with_numpy_only(published, target, tmp_path, names):
    values, state, path = published
    if names == "timm":
        path = tmp_path / "timm.safetensors"
        safetensors.numpy.save_file(timm_state(state), str(path))
    model = load_torch_file(target, path)
    for key, value in _values(model).items():
        np.testing.assert_array_equal(value, values[key], err_msg=key)
    assert model.get_layer("preprocessing").mode == "torch"


def test_without_head_and_with_a_new_one(published):
    values, _, path = published
    shape = (SIDE, SIDE, 3)
    body = create_model(
        "convnext_tiny", input_shape=shape, include_top=False, weights=path
    )
    for v in body.weights:
        np.testing.assert_array_equal(v.numpy(), values[v.path], err_msg=v.path)
    with pytest.raises(WeightMismatchError, match="predictions/kernel"):
        create_model("convnext_tiny", 3, input_shape=shape, weights=path)
    model = create_model(
        "convnext_tiny", 3, input_shape=shape, weights=path, reset_head=True
    )
    assert model.get_layer("predictions").kernel.shape == (768, 3)
    top = "body/top/norm/gamma"
    loaded = {v.path: v.numpy() for v in model.weights}
    np.testing.assert_array_equal(loaded[top], values[top])


def _drop(state):
    state = dict(state)
    del state["features.5.4.block.3.weight"]
    return state


def _reshape(state):
    return {**state, "features.3.1.layer_scale": np.ones((192, 2, 1), "float32")}


def _deeper(state):
    # A tenth block in stage 3: ConvNeXt-Small's depths, not Tiny's.
    extra = {
        k.replace("features.5.8.", "features.5.9."): v
        for k, v in state.items()
        if k.startswith("features.5.8.")
    }
    return {**state, **extra}


def _unused(state):
    return {**state, "features.7.2.block.6.weight": np.ones(3, "float32")}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop, "'features.5.4.block.3.weight' (for body/stage3/block5/"),
        (_reshape, "body/stage2/block2/layer_scale: the model has (192,)"),
        (_deeper, "(3, 3, 10, 3) blocks per stage"),
        (_unused, "features.7.2.block.6.weight"),
    ],
)
def test_refuses_a_bad_file_before_assigning(
    published, target, tmp_path, damage, message
):
    _, state, _ = published
    path = tmp_path / "bad.safetensors"
    safetensors.numpy.save_file(damage(state), str(path))
    before = _values(target)
    with pytest.raises(WeightMismatchError, match=re.escape(message)):
        load_torch_file(target, path)
    for key, value in _values(target).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


# With torch: the reference network ----------------------------------------


def torchvision_convnext(torch, depths, widths, num_classes):
    """A ConvNeXt with torchvision's architecture and state-dict names, from
    plain `torch.nn` modules (`torchvision.models.convnext`'s `CNBlock`,
    `LayerNorm2d` and the `features`/`classifier` sequentials)."""
    nn = torch.nn

    class LayerNorm2d(nn.LayerNorm):
        def forward(self, x):
            x = x.permute(0, 2, 3, 1)
            x = nn.functional.layer_norm(
                x, self.normalized_shape, self.weight, self.bias, self.eps
            )
            return x.permute(0, 3, 1, 2)

    class Permute(nn.Module):
        def __init__(self, dims):
            super().__init__()
            self.dims = dims

        def forward(self, x):
            return x.permute(*self.dims)

    class CNBlock(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.block = nn.Sequential(
                nn.Conv2d(dim, dim, 7, padding=3, groups=dim, bias=True),
                Permute((0, 2, 3, 1)),
                nn.LayerNorm(dim, eps=1e-6),
                nn.Linear(dim, 4 * dim),
                nn.GELU(),
                nn.Linear(4 * dim, dim),
                Permute((0, 3, 1, 2)),
            )
            self.layer_scale = nn.Parameter(torch.ones(dim, 1, 1) * 1e-6)

        def forward(self, x):
            return x + self.layer_scale * self.block(x)

    class ConvNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [
                nn.Sequential(
                    nn.Conv2d(3, widths[0], 4, stride=4),
                    LayerNorm2d(widths[0], eps=1e-6),
                )
            ]
            for i, (depth, width) in enumerate(zip(depths, widths, strict=True)):
                layers.append(nn.Sequential(*(CNBlock(width) for _ in range(depth))))
                if i + 1 < len(widths):
                    layers.append(
                        nn.Sequential(
                            LayerNorm2d(width, eps=1e-6),
                            nn.Conv2d(width, widths[i + 1], 2, stride=2),
                        )
                    )
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Sequential(
                LayerNorm2d(widths[-1], eps=1e-6),
                nn.Flatten(1),
                nn.Linear(widths[-1], num_classes),
            )

        def forward(self, x):
            return self.classifier(self.avgpool(self.features(x)))

    return ConvNeXt()


def _perturb(torch, net, seed):
    """Layer scales, norms and biases away from their initial values (a
    layer scale of 1e-6 would hide every block)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in net.named_parameters():
            if name.endswith("layer_scale"):
                parameter.uniform_(0.2, 0.6, generator=generator)
            elif parameter.ndim == 1:
                parameter.uniform_(-0.2, 0.2, generator=generator)
                if name.endswith(".weight"):
                    parameter.add_(1.0)
    return net.eval()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = _perturb(torch, torchvision_convnext(torch, DEPTHS, WIDTHS, CLASSES), 1)
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    folder = tmp_path_factory.mktemp("convnext_torch")
    path = folder / "convnext_tiny.safetensors"
    save_file(state, str(path))
    timm_path = folder / "convnext_tiny_timm.safetensors"
    save_file(timm_state(state), str(timm_path))
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    images = np.random.default_rng(4).uniform(0, 255, (2, 70, 70, 3))
    images = images.astype("float32")
    expected = {}
    # 64: every stride divides it; 70: the stem and the downsamplers drop
    # the last rows and columns, as torch's do.
    for side in (SIDE, 70):
        x = (images[:, :side, :side] / 255 - mean) / std
        with torch.no_grad():
            expected[side] = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
        expected[side] = expected[side].numpy()
    return {"torchvision": path, "timm": timm_path}, images, expected


@pytest.mark.parametrize("names", ["torchvision", "timm"])
def test_matches_torchvision_logits(reference, names):
    paths, images, expected = reference
    model = create_model(
        "convnext_tiny",
        CLASSES,
        input_shape=(None, None, 3),
        weights=paths[names],
        classifier_activation=None,
    )
    for side, want in expected.items():
        logits = keras.ops.convert_to_numpy(
            model(images[:, :side, :side], training=False)
        )
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            logits, want, rtol=0, atol=1e-5 * scale, err_msg=f"side {side}"
        )
