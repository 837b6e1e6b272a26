"""`.safetensors` files and torchvision/timm ResNet names:
`create_model("resnet18", weights="model.safetensors")` with no map.

Without torch: a file written with `safetensors.numpy` from a kerazoo model's
own weights, in torchvision's names and layouts, loads back exactly, with
`import torch` failing; a corrupt or mismatched file loads nothing. With
torch: a torchvision-architecture ResNet written here with `torch.nn`, its
state dict saved with `safetensors.torch`, gives the same logits in kerazoo
at odd and even image sides (the model is built with PyTorch's symmetric
padding, `padding="symmetric"`).
"""

import json
import re
import struct
import sys
import warnings

import keras
import numpy as np
import pytest
import safetensors.numpy
from torch_format import write_state_dict

from kerazoo.models import create_model
from kerazoo.weights import CheckpointFormatError
from kerazoo.weights import WeightMismatchError
from kerazoo.weights import load_safetensors
from kerazoo.weights.convert import TORCH_NAMES
from kerazoo.weights.convert import body_stages
from kerazoo.weights.convert import stage_blocks
from kerazoo.weights.torch_files import load_torch_file

# Any side; the torch test checks an even one (64) too, where Keras's "same"
# padding and PyTorch's differ.
SIDE = 65
CLASSES = 10
_LAYERS = {"conv1_bn": "bn1", "shortcut_conv": "downsample.0"}
_LAYERS["shortcut_bn"] = "downsample.1"


def torchvision_name(path):
    """torchvision's state-dict name of a kerazoo ResNet variable."""
    *scope, name = path.split("/")
    if scope == ["predictions"]:
        return f"fc.{TORCH_NAMES[name]}"
    layer = _LAYERS.get(scope[-1], scope[-1])
    block = re.fullmatch(r"body/stage(\d+)/block(\d+)", "/".join(scope[:-1]))
    if block:
        layer = f"layer{block[1]}.{int(block[2]) - 1}.{layer}"
    return f"{layer}.{TORCH_NAMES[name]}"


def torch_layout(value):
    if value.ndim == 4:
        return np.ascontiguousarray(value.transpose(3, 2, 0, 1))  # HWIO -> OIHW
    if value.ndim == 2:
        return np.ascontiguousarray(value.T)
    return value


def _values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A kerazoo ResNet-18 with batch-norm statistics away from their initial
    values, its state dict in torchvision's names and layouts and the file."""
    keras.utils.set_random_seed(1)
    model = create_model("resnet18", CLASSES, input_shape=(SIDE, SIDE, 3))
    rng = np.random.default_rng(0)
    for v in model.weights:
        if v.path.endswith(("moving_mean", "moving_variance", "gamma", "beta")):
            v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
    state = {torchvision_name(p): torch_layout(a) for p, a in _values(model).items()}
    state["bn1.num_batches_tracked"] = np.array(7, np.int64)  # ignored
    path = tmp_path_factory.mktemp("safetensors") / "resnet18.safetensors"
    safetensors.numpy.save_file(state, str(path))
    return _values(model), state, path


def test_loads_torchvision_names_with_numpy_only(published, monkeypatch):
    values, _, path = published
    # `import torch` fails: the file is read with NumPy only.
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    keras.utils.set_random_seed(2)
    model = create_model("resnet18", CLASSES, input_shape=(SIDE, SIDE, 3), weights=path)
    loaded = _values(model)
    assert loaded.keys() == values.keys()
    for key, value in values.items():
        np.testing.assert_array_equal(loaded[key], value, err_msg=key)
    # The weights' preprocessing: torchvision's ImageNet mean and std.
    preprocessing = model.get_layer("preprocessing")
    std, mean = (0.229, 0.224, 0.225), (0.485, 0.456, 0.406)
    assert preprocessing.scale == pytest.approx([1 / (255 * s) for s in std])
    assert preprocessing.offset == pytest.approx(
        [-m / s for m, s in zip(mean, std, strict=True)]
    )


def test_a_pth_state_dict_needs_no_map_either(published, tmp_path, fake_torch):
    values, state, _ = published
    path = tmp_path / "resnet18.pth"
    write_state_dict(path, state, fake_torch)
    model = create_model("resnet18", CLASSES, input_shape=(SIDE, SIDE, 3), weights=path)
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), values[v.path])


def test_bfloat16_tensors_read_as_float32(tmp_path):
    value = np.array([1.0, -2.5, 3.140625], np.float32)  # exact in bfloat16
    bits = (value.view(np.uint32) >> 16).astype("<u2").tobytes()
    # The format by hand: a header's length, the JSON header, the raw bytes.
    header = {
        "w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
        "n": {"dtype": "I64", "shape": [], "data_offsets": [6, 14]},
    }
    header = json.dumps(header).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "half.safetensors"
    path.write_bytes(
        struct.pack("<Q", len(header)) + header + bits + np.int64(5).tobytes()
    )
    arrays = load_safetensors(path)
    assert arrays["w"].dtype == np.float32
    np.testing.assert_array_equal(arrays["w"], value)
    assert arrays["n"] == 5


def test_without_head_and_with_a_new_one(published):
    values, _, path = published
    shape = (SIDE, SIDE, 3)
    body = create_model("resnet18", input_shape=shape, include_top=False, weights=path)
    for v in body.weights:
        np.testing.assert_array_equal(v.numpy(), values[v.path])
    with pytest.raises(WeightMismatchError, match="predictions/kernel"):
        create_model("resnet18", 3, input_shape=shape, weights=path)
    keras.utils.set_random_seed(3)
    model = create_model(
        "resnet18", 3, input_shape=shape, weights=path, reset_head=True
    )
    kept = model.get_layer("predictions").kernel.numpy()
    assert kept.shape == (512, 3)
    np.testing.assert_array_equal(
        model.get_layer("body").weights[0].numpy(), values["body/stem/conv1/kernel"]
    )


def test_other_names_take_a_weights_map(published, tmp_path):
    values, state, _ = published
    renamed = {f"net.{k}": v for k, v in state.items()}
    path = tmp_path / "renamed.safetensors"
    safetensors.numpy.save_file(renamed, str(path))
    shape = (SIDE, SIDE, 3)
    with pytest.raises(ValueError, match="weights_map"):
        create_model("resnet18", CLASSES, input_shape=shape, weights=path)
    model = create_model(
        "resnet18",
        CLASSES,
        input_shape=shape,
        weights=path,
        weights_map=lambda p: f"net.{torchvision_name(p)}",
    )
    for v in model.weights:
        np.testing.assert_array_equal(v.numpy(), values[v.path])


def _corrupt(state, path):
    safetensors.numpy.save_file(state, str(path))
    path.write_bytes(path.read_bytes()[:-100])


def _drop(state, path):
    state = dict(state)
    del state["layer3.1.bn2.running_var"]
    safetensors.numpy.save_file(state, str(path))


def _extra(state, path):
    state = {**state, "layer4.2.conv1.weight": state["layer4.1.conv1.weight"]}
    safetensors.numpy.save_file(state, str(path))


def _reshape(state, path):
    state = {**state, "layer2.0.conv2.weight": np.zeros((128, 128, 1, 1), "float32")}
    safetensors.numpy.save_file(state, str(path))


def _garbage(state, path):
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")


@pytest.fixture(scope="module")
def target():
    """A ResNet-18 that takes these files (PyTorch's padding), shared by the
    refusals: each checks that it keeps its weights."""
    return create_model(
        "resnet18", CLASSES, input_shape=(SIDE, SIDE, 3), padding="symmetric"
    )


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        (_corrupt, CheckpointFormatError, "not a readable safetensors"),
        (_garbage, CheckpointFormatError, "not a readable safetensors"),
        (_drop, WeightMismatchError, "layer3.1.bn2.running_var"),
        (_extra, WeightMismatchError, "another depth"),
        (_reshape, WeightMismatchError, "body/stage2/block1/conv2/kernel"),
    ],
)
def test_refuses_a_bad_file_before_assigning(
    published, target, tmp_path, damage, error, message
):
    _, state, _ = published
    path = tmp_path / "bad.safetensors"
    damage(state, path)
    model = target
    before = _values(model)
    with pytest.raises(error, match=re.escape(message)):
        load_torch_file(model, path)
    after = _values(model)
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value, err_msg=key)
    assert model.get_layer("preprocessing").mode == "caffe"


def test_builds_with_pytorchs_padding_at_an_even_side(published):
    *_, path = published
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = create_model("resnet18", CLASSES, input_shape=(64, 64, 3), weights=path)
    blocks = [b for stage in body_stages(model) for b in stage_blocks(stage)]
    assert blocks and {b.padding for b in blocks} == {"symmetric"}


def test_refuses_keras_same_padding(published):
    *_, path = published
    shape = (SIDE, SIDE, 3)
    with pytest.raises(ValueError, match="padding='symmetric'"):
        create_model(
            "resnet18", CLASSES, input_shape=shape, weights=path, padding="same"
        )
    model = create_model("resnet18", CLASSES, input_shape=shape)
    before = _values(model)
    with pytest.raises(WeightMismatchError, match="padding='symmetric'"):
        load_torch_file(model, path)
    for key, value in _values(model).items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


def test_refuses_the_stride_on_the_1x1_convolution(tmp_path):
    # The same shapes either way: one model gives the file and is refused.
    shape = (SIDE, SIDE, 3)
    model = create_model(
        "resnet50", CLASSES, input_shape=shape, stride_on="1x1", padding="symmetric"
    )
    state = {torchvision_name(p): torch_layout(a) for p, a in _values(model).items()}
    path = tmp_path / "resnet50.safetensors"
    safetensors.numpy.save_file(state, str(path))
    with pytest.raises(ValueError, match="stride_on='3x3'"):
        create_model(
            "resnet50", CLASSES, input_shape=shape, weights=path, stride_on="1x1"
        )
    with pytest.raises(WeightMismatchError, match="stride_on='3x3'"):
        load_torch_file(model, path)


# With torch: the reference network ----------------------------------------


def torchvision_resnet(torch, kind, depths, num_classes):
    """A ResNet with torchvision's architecture and state-dict names, from
    plain `torch.nn` modules (v1.5: a bottleneck strides in its 3x3
    convolution)."""
    nn = torch.nn

    def conv(cin, cout, k, stride=1):
        return nn.Conv2d(cin, cout, k, stride, padding=k // 2, bias=False)

    class Block(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            self.expansion = 4 if kind == "bottleneck" else 1
            cout = width * self.expansion
            if kind == "bottleneck":
                specs = [(cin, width, 1, 1), (width, width, 3, stride)]
                specs.append((width, cout, 1, 1))
            else:
                specs = [(cin, width, 3, stride), (width, width, 3, 1)]
            for i, (a, b, k, s) in enumerate(specs):
                setattr(self, f"conv{i + 1}", conv(a, b, k, s))
                setattr(self, f"bn{i + 1}", nn.BatchNorm2d(b))
            self.count = len(specs)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(
                    conv(cin, cout, 1, stride), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = x
            for i in range(self.count):
                y = getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}")(y))
                if i < self.count - 1:
                    y = self.relu(y)
            shortcut = x if self.downsample is None else self.downsample(x)
            return self.relu(y + shortcut)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, padding=1)
            cin = 64
            for k, (depth, width) in enumerate(
                zip(depths, (64, 128, 256, 512), strict=True)
            ):
                blocks = []
                for j in range(depth):
                    blocks.append(Block(cin, width, 2 if j == 0 and k > 0 else 1))
                    cin = width * blocks[-1].expansion
                setattr(self, f"layer{k + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(cin, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for k in range(4):
                x = getattr(self, f"layer{k + 1}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet()


def _perturb_norms(torch, net, seed):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                n = module.num_features
                module.weight.uniform_(0.5, 1.5, generator=generator)
                module.bias.uniform_(-0.2, 0.2, generator=generator)
                module.running_mean.uniform_(-0.2, 0.2, generator=generator)
                module.running_var.uniform_(0.5, 2.0, generator=generator)
                module.num_batches_tracked.fill_(n)
    return net.eval()


@pytest.mark.parametrize(
    ("name", "kind", "depths"),
    [
        ("resnet18", "basic", (2, 2, 2, 2)),
        ("resnet50", "bottleneck", (3, 4, 6, 3)),
    ],
)
def test_matches_torchvision_logits(tmp_path, name, kind, depths):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = _perturb_norms(torch, torchvision_resnet(torch, kind, depths, CLASSES), 1)
    path = tmp_path / f"{name}.safetensors"
    save_file(net.state_dict(), str(path))
    # One model for both sides: 65 (odd sides at every stride-2 3x3
    # convolution) and 64 (even ones, where Keras's "same" padding is not
    # PyTorch's).
    model = create_model(
        name,
        CLASSES,
        input_shape=(None, None, 3),
        weights=path,
        classifier_activation=None,
    )
    mean = np.array([0.485, 0.456, 0.406], "float32")
    std = np.array([0.229, 0.224, 0.225], "float32")
    for side in (SIDE, 64):
        images = np.random.default_rng(4).uniform(0, 255, (2, side, side, 3))
        images = images.astype("float32")
        x = (images / 255 - mean) / std
        x = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        with torch.no_grad():
            expected = net(x).numpy()
        logits = keras.ops.convert_to_numpy(model(images, training=False))
        scale = np.abs(expected).max()
        np.testing.assert_allclose(
            logits, expected, rtol=0, atol=1e-5 * scale, err_msg=f"side {side}"
        )
