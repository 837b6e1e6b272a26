"""torchvision's and timm's EfficientNet names: `create_model("efficientnet_b0",
weights="model.safetensors")` with no map
(`kerazoo.models.efficientnet.convert_torch`).

An EfficientNet-B0 with torchvision's architecture and state-dict names,
written here with `torch.nn` (random weights, batch-norm statistics moved off
their initial values), its state dict saved with `safetensors.torch` (and
renamed to timm's names), gives the same logits in kerazoo at an even and an
odd image size; a file missing a tensor, with one of another shape or of
another depth (B1's) loads nothing.
"""

import re

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.torch_files import load_torch_file

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

SIDE = 64
CLASSES = 10
# torchvision's B0 (expand ratio, kernel, stride, input and output channels,
# repeats).
B0 = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)


def torchvision_efficientnet(depth=1.0, num_classes=CLASSES):
    """An EfficientNet (width 1) with torchvision's architecture and
    state-dict names (`torchvision.models.efficientnet`'s `MBConv`,
    `Conv2dNormActivation` and `SqueezeExcitation`), from `torch.nn`."""
    nn = torch.nn

    def conv_bn(cin, cout, kernel, stride=1, groups=1, act=True):
        layers = [
            nn.Conv2d(
                cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(cout, eps=1e-5),
        ]
        return nn.Sequential(*layers, *([nn.SiLU()] if act else []))

    class SqueezeExcitation(nn.Module):
        def __init__(self, channels, squeeze):
            super().__init__()
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.fc2 = nn.Conv2d(squeeze, channels, 1)

        def forward(self, x):
            s = x.mean((2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(nn.functional.silu(self.fc1(s))))

    class MBConv(nn.Module):
        def __init__(self, expand, kernel, stride, cin, cout):
            super().__init__()
            mid = cin * expand
            layers = [conv_bn(cin, mid, 1)] if mid != cin else []
            layers += [
                conv_bn(mid, mid, kernel, stride, groups=mid),
                SqueezeExcitation(mid, max(1, cin // 4)),
                conv_bn(mid, cout, 1, act=False),
            ]
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            y = self.block(x)
            return x + y if self.residual else y

    class EfficientNet(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [conv_bn(3, 32, 3, 2)]
            for expand, kernel, stride, cin, cout, repeats in B0:
                blocks = [
                    MBConv(
                        expand,
                        kernel,
                        stride if j == 0 else 1,
                        cin if j == 0 else cout,
                        cout,
                    )
                    for j in range(int(np.ceil(repeats * depth)))
                ]
                layers.append(nn.Sequential(*blocks))
            layers.append(conv_bn(320, 1280, 1))
            self.features = nn.Sequential(*layers)
            self.classifier = nn.Sequential(
                nn.Dropout(0.2), nn.Linear(1280, num_classes)
            )

        def forward(self, x):
            x = self.features(x).mean((2, 3))
            return self.classifier(x)

    return EfficientNet()


def _perturb(net, seed):
    """Batch-norm statistics and affine parameters, and the biases, away from
    their initial values."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in net.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5, generator=generator)
            elif name.endswith(("running_mean", "bias")):
                tensor.uniform_(-0.2, 0.2, generator=generator)
            elif tensor.ndim == 1 and name.endswith("weight"):
                tensor.uniform_(0.8, 1.2, generator=generator)
    return net.eval()


_TIMM_TOP = {
    "features.0.0": "conv_stem",
    "features.0.1": "bn1",
    "features.8.0": "conv_head",
    "features.8.1": "bn2",
    "classifier.1": "classifier",
}
_TIMM_DS = {"0.0": "conv_dw", "0.1": "bn1", "2.0": "conv_pw", "2.1": "bn2"}
_TIMM_IR = {
    "0.0": "conv_pw",
    "0.1": "bn1",
    "1.0": "conv_dw",
    "1.1": "bn2",
    "3.0": "conv_pwl",
    "3.1": "bn3",
}
_TIMM_SE = {"fc1": "se.conv_reduce", "fc2": "se.conv_expand"}


def timm_name(key):
    """timm's name of a torchvision EfficientNet state-dict name."""
    prefix, name = key.rsplit(".", 1)
    if prefix in _TIMM_TOP:
        return f"{_TIMM_TOP[prefix]}.{name}"
    _, stage, block, _, part, layer = prefix.split(".")
    se = 1 if stage == "1" else 2
    if part == str(se):
        layer = _TIMM_SE[layer]
    else:
        layer = (_TIMM_DS if stage == "1" else _TIMM_IR)[f"{part}.{layer}"]
    return f"blocks.{int(stage) - 1}.{block}.{layer}.{name}"


def _save(state, path):
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch.manual_seed(0)
    net = _perturb(torchvision_efficientnet(), 1)
    state = dict(net.state_dict())
    folder = tmp_path_factory.mktemp("efficientnet_torch")
    paths = {
        "torchvision": _save(state, folder / "b0.safetensors"),
        "timm": _save(
            {timm_name(k): v for k, v in state.items()}, folder / "b0_timm.safetensors"
        ),
    }
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    images = np.random.default_rng(4).uniform(0, 255, (2, 70, 70, 3))
    images = images.astype("float32")
    expected = {}
    # 64: every stride divides it; 70: odd sides after the first strides,
    # where Keras's "same" and torch's padding sample different pixels.
    for side in (SIDE, 70):
        x = (images[:, :side, :side] / 255 - mean) / std
        with torch.no_grad():
            logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
        expected[side] = logits.numpy()
    return paths, state, images, expected


@pytest.mark.parametrize("names", ["torchvision", "timm"])
def test_matches_torch_logits(reference, names):
    paths, _, images, expected = reference
    model = create_model(
        "efficientnet_b0",
        CLASSES,
        input_shape=(None, None, 3),
        weights=paths[names],
        classifier_activation=None,
    )
    assert model.get_layer("preprocessing").mode == "torch"
    for side, want in expected.items():
        logits = keras.ops.convert_to_numpy(
            model(images[:, :side, :side], training=False)
        )
        scale = np.abs(want).max()
        np.testing.assert_allclose(
            logits, want, rtol=0, atol=1e-5 * scale, err_msg=f"side {side}"
        )


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def _drop(state):
    state = dict(state)
    del state["features.3.1.block.2.fc1.weight"]
    return state


def _reshape(state):
    return {**state, "features.2.0.block.1.0.weight": torch.ones(96, 1, 5, 5)}


def _b1(state):
    return dict(torchvision_efficientnet(depth=1.1).state_dict())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop, "'features.3.1.block.2.fc1.weight' (for body/stage3/block2/"),
        (_reshape, "body/stage2/block1/depthwise/kernel: the model has (3, 3, 96, 1)"),
        (_b1, "(2, 3, 3, 4, 4, 5, 2) blocks per stage"),
    ],
)
def test_refuses_a_bad_file_before_assigning(reference, tmp_path, damage, message):
    _, state, _, _ = reference
    target = create_model(
        "efficientnet_b0",
        CLASSES,
        input_shape=(SIDE, SIDE, 3),
        padding="symmetric",
        norm_epsilon=1e-5,
    )
    path = _save(damage(state), tmp_path / "bad.safetensors")
    before = _values(target)
    with pytest.raises(WeightMismatchError, match=re.escape(message)):
        load_torch_file(target, path)
    for key, value in _values(target).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_refuses_keras_padding(reference):
    paths, *_ = reference
    model = create_model("efficientnet_b0", CLASSES, input_shape=(SIDE, SIDE, 3))
    with pytest.raises(WeightMismatchError, match="padding='symmetric'"):
        load_torch_file(model, paths["torchvision"])
