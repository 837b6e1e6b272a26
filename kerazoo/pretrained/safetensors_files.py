"""Reading `.safetensors` files with NumPy: `load_safetensors(path)`.

A safetensors file is a JSON header (each tensor's dtype, shape and byte
range) followed by the raw tensors: no pickle, nothing in it runs. It is read
with `safetensors.numpy`, so torch is not needed. `create_model(name,
weights="model.safetensors")` loads one as it loads a PyTorch checkpoint
(`kerazoo.pretrained.torch_files`): through a registered converter that knows
the file's names (torchvision's and timm's ResNets), or with `weights_map`.
"""

import os
import pathlib

import numpy as np

from kerazoo.pretrained.checkpoint import CheckpointFormatError

SUFFIX = ".safetensors"


def is_safetensors_path(weights):
    return isinstance(weights, (str, pathlib.Path)) and str(weights).endswith(SUFFIX)


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


def _read_bfloat16(path):
    """Every tensor of the file, bfloat16 ones as float32 (which
    `safetensors.numpy` refuses: NumPy has no bfloat16)."""
    import safetensors

    with open(path, "rb") as f:
        entries = safetensors.deserialize(f.read())
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
    return arrays


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
        import safetensors.numpy
    except ImportError:
        raise ImportError(
            f"Reading {path} needs the `safetensors` package: pip install "
            "safetensors (torch is not needed)."
        ) from None
    try:
        arrays = safetensors.numpy.load_file(path)
    except TypeError as error:
        if "bfloat16" not in str(error):
            raise
        arrays = _read_bfloat16(path)
    except safetensors.SafetensorError as error:
        raise CheckpointFormatError(
            f"{path} is not a readable safetensors file: {error}"
        ) from None
    if not arrays:
        raise CheckpointFormatError(f"No tensors found in {path}.")
    # Where ml_dtypes (imported by TensorFlow and JAX) gives NumPy a
    # bfloat16, safetensors returns it: float32 all the same.
    return {
        name: value.astype(np.float32) if value.dtype.name == "bfloat16" else value
        for name, value in arrays.items()
    }
