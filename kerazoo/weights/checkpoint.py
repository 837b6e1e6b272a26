"""Reading PyTorch checkpoints with NumPy, without torch and without running
code from the file.

A PyTorch checkpoint is a pickle. Unpickling runs whatever callables the file
names, so `torch.load` on an untrusted file can run arbitrary code. Here the
unpickler resolves only an allow-list of names (ordered dicts, tensor rebuild
functions, storage types); any other global in the file is refused, with its
name, before anything from the file runs. Both formats are read: the legacy one
(a sequence of pickles followed by raw storages, `torch.save(...,
_use_new_zipfile_serialization=False)` and checkpoints of torch < 1.6) and the
zip one (`archive/data.pkl` plus one file per storage).
"""

import collections
import io
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "DoubleStorage": np.float64,
    "FloatStorage": np.float32,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
    """The checkpoint names a global outside the allow-list; nothing ran."""


class CheckpointFormatError(ValueError):
    """The file is not a readable PyTorch checkpoint (truncated, corrupt or
    another format)."""


class _StorageType:
    def __init__(self, name):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    def __init__(self, key, dtype, numel):
        self.key = key
        self.dtype = dtype
        self.numel = numel
        self.data = None  # a 1-D array, filled once the storages are read


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)

    def to_numpy(self):
        data = self.storage.data
        if data is None:
            raise CheckpointFormatError(
                f"Storage {self.storage.key!r} was never read: the file is "
                "truncated or corrupt."
            )
        if not self.size:
            return np.array(data[self.offset])
        end = (
            self.offset
            + 1
            + sum((n - 1) * s for n, s in zip(self.size, self.stride, strict=True))
        )
        if end > data.size or self.offset < 0:
            raise CheckpointFormatError(
                f"A tensor of shape {self.size} reaches past its storage "
                f"({data.size} elements): the file is corrupt."
            )
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :],
            shape=self.size,
            strides=[s * data.itemsize for s in self.stride],
            writeable=False,
        )
        return np.array(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *_args, **_kwargs):
    if not isinstance(storage, _Storage):
        raise CheckpointFormatError("A tensor refers to something not a storage.")
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, _requires_grad, _backward_hooks, *_args):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, storages):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"Refusing to load: the checkpoint names the global "
                f"'{module}.{name}', which is not on kerazoo's allow-list of "
                "tensor and container types. Nothing from the file was run."
            ) from None

    def persistent_load(self, saved_id):
        if not isinstance(saved_id, tuple) or not saved_id:
            raise CheckpointFormatError(f"Unexpected persistent id {saved_id!r}.")
        if saved_id[0] != "storage":
            raise UnsafeCheckpointError(
                f"Refusing to load: unexpected persistent id kind {saved_id[0]!r}."
            )
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise CheckpointFormatError(f"Unknown storage type {storage_type!r}.")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self._storages[key]


def _load_pickle(file, storages):
    try:
        return _RestrictedUnpickler(file, storages).load()
    except (UnsafeCheckpointError, CheckpointFormatError):
        raise
    except (pickle.UnpicklingError, EOFError, struct.error, ValueError) as error:
        raise CheckpointFormatError(f"Not a readable checkpoint: {error}") from None


def _read_legacy(file):
    storages = {}
    magic = _load_pickle(file, storages)
    if magic != _LEGACY_MAGIC:
        raise CheckpointFormatError("Not a PyTorch checkpoint (wrong magic number).")
    _load_pickle(file, storages)  # protocol version
    sys_info = _load_pickle(file, storages)
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise CheckpointFormatError("Big-endian checkpoints are not supported.")
    result = _load_pickle(file, storages)
    keys = _load_pickle(file, storages)
    for key in keys:
        storage = storages.get(str(key))
        if storage is None:
            raise CheckpointFormatError(f"Storage {key!r} is listed but unused.")
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointFormatError("The file is truncated (storage header).")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * storage.dtype.itemsize
        raw = file.read(nbytes)
        if len(raw) != nbytes:
            raise CheckpointFormatError(
                f"The file is truncated: storage {key!r} needs {nbytes} bytes, "
                f"{len(raw)} remain."
            )
        storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return result


def _read_zip(path):
    storages = {}
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if not pickles:
            raise CheckpointFormatError("A zip file without data.pkl.")
        prefix = pickles[0][: -len("data.pkl")]
        with archive.open(pickles[0]) as f:
            result = _load_pickle(io.BytesIO(f.read()), storages)
        for key, storage in storages.items():
            name = f"{prefix}data/{key}"
            if name not in names:
                raise CheckpointFormatError(f"Storage file {name!r} is missing.")
            raw = archive.read(name)
            storage.data = np.frombuffer(raw, dtype=storage.dtype.newbyteorder("<"))
    return result


def _flatten(obj, prefix=""):
    if isinstance(obj, _TensorRef):
        return {prefix: obj.to_numpy()}
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_flatten(value, name))
        return out
    return {}


def load_checkpoint(path):
    """Reads a PyTorch checkpoint into `{name: numpy array}`, safely.

    Args:
        path: A `.pth`/`.pt` file, legacy or zip format.

    Returns:
        A dict from parameter name (nested dicts joined with `.`, as in a
        `state_dict`) to a NumPy array. Non-tensor entries are dropped.

    Raises:
        UnsafeCheckpointError: the file names a global outside the allow-list;
            nothing from it ran.
        CheckpointFormatError: truncated, corrupt, or not a checkpoint.
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        result = _read_zip(path)
    else:
        with open(path, "rb") as f:
            result = _read_legacy(f)
    tensors = _flatten(result)
    if not tensors:
        raise CheckpointFormatError(f"No tensors found in {path}.")
    return tensors
