"""torchvision's MobileNetV3 names: `create_model("mobilenet_v3_large",
weights="model.safetensors")` with no map
(`kerazoo.models.mobilenet.convert_torch`).

With torch: MobileNetV3 Large and Small with torchvision's architecture and
state-dict names, written here with `torch.nn` (random weights, batch-norm
statistics moved, eval mode), saved with `safetensors.torch`, give the same
logits in kerazoo at an even and an odd image side; a file missing a tensor,
with one of another shape or of the other size loads nothing.
"""

import re

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.torch_files import load_torch_file

CLASSES = 10
# (input, kernel, expanded, output, squeeze-excite, hard-swish, stride), as
# torchvision's `_mobilenet_v3_conf`.
LARGE = (
    (16, 3, 16, 16, False, False, 1),
    (16, 3, 64, 24, False, False, 2),
    (24, 3, 72, 24, False, False, 1),
    (24, 5, 72, 40, True, False, 2),
    (40, 5, 120, 40, True, False, 1),
    (40, 5, 120, 40, True, False, 1),
    (40, 3, 240, 80, False, True, 2),
    (80, 3, 200, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 184, 80, False, True, 1),
    (80, 3, 480, 112, True, True, 1),
    (112, 3, 672, 112, True, True, 1),
    (112, 5, 672, 160, True, True, 2),
    (160, 5, 960, 160, True, True, 1),
    (160, 5, 960, 160, True, True, 1),
)
SMALL = (
    (16, 3, 16, 16, True, False, 2),
    (16, 3, 72, 24, False, False, 2),
    (24, 3, 88, 24, False, False, 1),
    (24, 5, 96, 40, True, True, 2),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 240, 40, True, True, 1),
    (40, 5, 120, 48, True, True, 1),
    (48, 5, 144, 48, True, True, 1),
    (48, 5, 288, 96, True, True, 2),
    (96, 5, 576, 96, True, True, 1),
    (96, 5, 576, 96, True, True, 1),
)
CONFIGS = {"large": (LARGE, 1280), "small": (SMALL, 1024)}
SIDES = (64, 70)


def _make_divisible(value, divisor=8):
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def torchvision_mobilenet_v3(torch, size, num_classes):
    """A MobileNetV3 with torchvision's modules and names
    (`torchvision.models.mobilenetv3`: `Conv2dNormActivation`,
    `InvertedResidual`, `torchvision.ops.SqueezeExcitation`)."""
    nn = torch.nn
    blocks, last = CONFIGS[size]

    def conv_bn(cin, cout, kernel, stride=1, groups=1, act=None):
        layers = [
            nn.Conv2d(
                cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False
            ),
            nn.BatchNorm2d(cout, eps=0.001, momentum=0.01),
        ]
        return nn.Sequential(*layers, *([act()] if act else []))

    class SqueezeExcitation(nn.Module):
        def __init__(self, channels, squeeze):
            super().__init__()
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.fc2 = nn.Conv2d(squeeze, channels, 1)

        def forward(self, x):
            s = nn.functional.adaptive_avg_pool2d(x, 1)
            s = nn.functional.hardsigmoid(self.fc2(nn.functional.relu(self.fc1(s))))
            return x * s

    class InvertedResidual(nn.Module):
        def __init__(self, cin, kernel, expanded, cout, se, hs, stride):
            super().__init__()
            act = nn.Hardswish if hs else nn.ReLU
            layers = []
            if expanded != cin:
                layers.append(conv_bn(cin, expanded, 1, act=act))
            layers.append(conv_bn(expanded, expanded, kernel, stride, expanded, act))
            if se:
                squeeze = _make_divisible(expanded // 4)
                layers.append(SqueezeExcitation(expanded, squeeze))
            layers.append(conv_bn(expanded, cout, 1))
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and cin == cout

        def forward(self, x):
            return x + self.block(x) if self.residual else self.block(x)

    class MobileNetV3(nn.Module):
        def __init__(self):
            super().__init__()
            top = 6 * blocks[-1][3]
            self.features = nn.Sequential(
                conv_bn(3, 16, 3, 2, act=nn.Hardswish),
                *(InvertedResidual(*row) for row in blocks),
                conv_bn(blocks[-1][3], top, 1, act=nn.Hardswish),
            )
            self.classifier = nn.Sequential(
                nn.Linear(top, last),
                nn.Hardswish(),
                nn.Dropout(0.2),
                nn.Linear(last, num_classes),
            )

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), 1)
            return self.classifier(torch.flatten(x, 1))

    return MobileNetV3()


def _perturb(torch, net, seed):
    """Batch-norm statistics and affine parameters away from their initial
    values (which would make every batch norm the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)
                module.weight.uniform_(0.8, 1.2, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
    return net.eval()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("mobilenet_torch")
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    images = np.random.default_rng(4).uniform(0, 255, (2, 70, 70, 3))
    images = images.astype("float32")
    out = {}
    for i, size in enumerate(CONFIGS):
        net = _perturb(torch, torchvision_mobilenet_v3(torch, size, CLASSES), i)
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        path = folder / f"mobilenet_v3_{size}.safetensors"
        save_file(state, str(path))
        expected = {}
        # 64: every stride divides it; 70: odd sides after the first stride,
        # where Keras's "same" and PyTorch's padding differ most.
        for side in SIDES:
            x = (images[:, :side, :side] / 255 - mean) / std
            with torch.no_grad():
                logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()))
            expected[side] = logits.numpy()
        out[size] = path, {k: v.numpy() for k, v in state.items()}, expected
    return images, out


@pytest.mark.parametrize("size", list(CONFIGS))
def test_matches_torchvision_logits(reference, size):
    images, out = reference
    path, _, expected = out[size]
    model = create_model(
        f"mobilenet_v3_{size}",
        CLASSES,
        input_shape=(None, None, 3),
        weights=path,
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


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


def _drop(state):
    state = dict(state)
    del state["features.4.block.2.fc1.weight"]
    return state


def _reshape(state):
    return {**state, "features.7.block.0.1.running_var": np.ones(8, "float32")}


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop, "'features.4.block.2.fc1.weight' (for body/stage3/block1/"),
        (_reshape, "body/stage4/block1/expand_bn/moving_variance: the model has"),
        ("small", "The source has 11 inverted-residual blocks"),
    ],
)
def test_refuses_a_bad_file_before_assigning(reference, tmp_path, damage, message):
    from safetensors.numpy import save_file

    _, out = reference
    state = out["small"][1] if damage == "small" else damage(out["large"][1])
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    target = create_model(
        "mobilenet_v3_large", CLASSES, input_shape=(64, 64, 3), padding="symmetric"
    )
    before = _values(target)
    with pytest.raises(WeightMismatchError, match=re.escape(message)):
        load_torch_file(target, path)
    for key, value in _values(target).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_refuses_a_model_with_keras_padding(reference):
    _, out = reference
    target = create_model("mobilenet_v3_large", CLASSES, input_shape=(64, 64, 3))
    with pytest.raises(WeightMismatchError, match="padding='symmetric'"):
        load_torch_file(target, out["large"][0])
