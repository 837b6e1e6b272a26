"""An independent float64 NumPy computation of an EfficientNet-Lite checkpoint,
written from the paper and the checkpoint alone (not from kerazoo's builder),
against which the converted weights are checked.

The structure is read from the checkpoint: kernel sizes from the kernels'
shapes, expansion from the presence of `_expand_conv`, and stage boundaries
where a block changes the number of channels. The strides of the seven stages
are EfficientNet's (1, 2, 2, 2, 1, 2, 1); padding is TensorFlow's "same" (the
extra pixel at the end), batch-norm epsilon 1e-3, activations ReLU6, input
`(x - 127) / 128`.
"""

import math

import numpy as np

STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


def _same_pad(x, k, s):
    pads = []
    for n in x.shape[1:3]:
        total = max((math.ceil(n / s) - 1) * s + k - n, 0)
        pads.append((total // 2, total - total // 2))
    return np.pad(x, [(0, 0), *pads, (0, 0)])


def _conv(x, w, s=1):
    """NHWC input, OIHW kernel."""
    k = w.shape[2]
    xp = _same_pad(x, k, s)
    oh, ow = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    out = np.zeros((x.shape[0], oh, ow, w.shape[0]))
    for i in range(k):
        for j in range(k):
            patch = xp[:, i : i + s * oh : s, j : j + s * ow : s, :]
            out += patch @ w[:, :, i, j].T
    return out


def _depthwise(x, w, s=1):
    """NHWC input, (C, 1, kh, kw) kernel."""
    k = w.shape[2]
    xp = _same_pad(x, k, s)
    oh, ow = math.ceil(x.shape[1] / s), math.ceil(x.shape[2] / s)
    out = np.zeros((x.shape[0], oh, ow, x.shape[3]))
    for i in range(k):
        for j in range(k):
            out += xp[:, i : i + s * oh : s, j : j + s * ow : s, :] * w[:, 0, i, j]
    return out


def _bn(x, p, prefix):
    mean, var = p[f"{prefix}.running_mean"], p[f"{prefix}.running_var"]
    scale = p[f"{prefix}.weight"] / np.sqrt(var + 1e-3)
    return (x - mean) * scale + p[f"{prefix}.bias"]


def _relu6(x):
    return np.clip(x, 0, 6)


def efficientnet_lite_logits(images, checkpoint):
    """Logits of EfficientNet-Lite (any of Lite0-4) for raw 0-255 `images`
    (NHWC), in float64, from the checkpoint's `{name: array}`."""
    p = {k: np.asarray(v, "float64") for k, v in checkpoint.items()}
    x = (np.asarray(images, "float64") - 127.0) / 128.0
    x = _relu6(_bn(_conv(x, p["_conv_stem.weight"], 2), p, "_bn0"))
    count = len({k.split(".")[1] for k in p if k.startswith("_blocks.")})
    stage = -1
    for index in range(count):
        b = f"_blocks.{index}"
        out_channels = p[f"{b}._project_conv.weight"].shape[0]
        first = out_channels != x.shape[-1] or index == 0
        if first:
            stage += 1
        stride = STAGE_STRIDES[stage] if first else 1
        inputs = x
        if f"{b}._expand_conv.weight" in p:
            x = _relu6(_bn(_conv(x, p[f"{b}._expand_conv.weight"]), p, f"{b}._bn0"))
        x = _depthwise(x, p[f"{b}._depthwise_conv.weight"], stride)
        x = _relu6(_bn(x, p, f"{b}._bn1"))
        x = _bn(_conv(x, p[f"{b}._project_conv.weight"]), p, f"{b}._bn2")
        if stride == 1 and inputs.shape[-1] == x.shape[-1]:
            x = x + inputs
    x = _relu6(_bn(_conv(x, p["_conv_head.weight"]), p, "_bn1"))
    x = x.mean(axis=(1, 2))
    return x @ p["_fc.weight"].T + p["_fc.bias"]
