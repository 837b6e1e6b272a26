"""Reading `.safetensors` files with NumPy: `load_safetensors(path)`.

A safetensors file is a JSON header (each tensor's dtype, shape and byte
range) followed by the raw tensors: no pickle, nothing in it runs. It is read
with `safetensors` and NumPy, so torch is not needed. `create_model(name,
weights="model.safetensors")` loads one as it loads a PyTorch checkpoint
(`kerazoo.weights.torch_files`): through a registered converter that knows
the file's names (torchvision's and timm's ResNets, ConvNeXts and
EfficientNets, torchvision's MobileNetV3s), or with `weights_map`.
"""

import os

import numpy as np

from kerazoo.weights.checkpoint import CheckpointFormatError

SUFFIX = ".safetensors"


# safetensors' dtype names and NumPy's (little-endian, as the format is).
_DTYPES = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}


def load_safetensors(path):
    """Reads a `.safetensors` file into `{name: numpy array}`.

    Args:
        path: The file.

    Returns:
        A dict from tensor name (`"layer1.0.conv1.weight"`) to a NumPy array
        in the file's layout (bfloat16 tensors as float32).

    Raises:
        CheckpointFormatError: the file is truncated, corrupt, not a
            safetensors file or holds no tensor.
    """
    path = os.fspath(path)
    try:
        import safetensors
    except ImportError:
        raise ImportError(
            f"Reading {path} needs the `safetensors` package: pip install "
            "safetensors (torch is not needed)."
        ) from None
    # `safetensors.deserialize` gives each tensor's dtype, shape and bytes, so
    # that bfloat16 (which NumPy lacks) is read as float32 here, the same
    # whether or not ml_dtypes has given NumPy a bfloat16.
    with open(path, "rb") as file:
        try:
            entries = safetensors.deserialize(file.read())
        except safetensors.SafetensorError as error:
            raise CheckpointFormatError(
                f"{path} is not a readable safetensors file: {error}"
            ) from None
    arrays = {}
    for name, entry in entries:
        dtype, shape = entry["dtype"], entry["shape"]
        if dtype == "BF16":
            # A bfloat16 is the upper half of a float32's bits.
            bits = np.frombuffer(entry["data"], dtype="<u2").astype(np.uint32)
            arrays[name] = (bits << 16).view(np.float32).reshape(shape)
        elif dtype in _DTYPES:
            arrays[name] = np.frombuffer(entry["data"], _DTYPES[dtype]).reshape(shape)
        else:
            raise CheckpointFormatError(
                f"{path}: tensor {name!r} has dtype {dtype}, which kerazoo does "
                "not read."
            )
    if not arrays:
        raise CheckpointFormatError(f"No tensors found in {path}.")
    return arrays
