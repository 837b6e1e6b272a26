"""A minimal writer of PyTorch's two checkpoint formats, for the tests (no
torch needed): `fake_torch` registers the module names pickle refers to."""

import collections
import io
import pickle
import struct
import sys
import types
import zipfile

import numpy as np


class _FakeStorageType:
    pass


def _rebuild_tensor_v2(*args):  # stands in for torch._utils._rebuild_tensor_v2
    raise AssertionError("never called when writing")


class Tensor:
    """A tensor to pickle: a view (offset, shape, strides) of a storage."""

    def __init__(self, storage_key, offset, shape, strides):
        self.args = (storage_key, offset, shape, strides)

    def __reduce__(self):
        key, offset, shape, strides = self.args
        return (
            _rebuild_tensor_v2,
            (
                ("storage", key),
                offset,
                tuple(shape),
                tuple(strides),
                False,
                collections.OrderedDict(),
            ),
        )


def install_fake_torch(monkeypatch):
    """Registers `torch`, `torch._utils` and storage classes in sys.modules so
    that pickle can name them; removed after the test."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    _rebuild_tensor_v2.__module__ = "torch._utils"
    storages = {}
    for name in ("FloatStorage", "LongStorage", "HalfStorage"):
        cls = type(name, (_FakeStorageType,), {"__module__": "torch"})
        setattr(torch, name, cls)
        storages[name] = cls
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return storages


class _Pickler(pickle.Pickler):
    def __init__(self, file, storages, types_):
        super().__init__(file, protocol=2)
        self.storages, self.types = storages, types_

    def persistent_id(self, obj):
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == "storage":
            key = obj[1]
            data = self.storages[key]
            kind = {
                "float32": "FloatStorage",
                "int64": "LongStorage",
                "float16": "HalfStorage",
            }[data.dtype.name]
            return ("storage", self.types[kind], key, "cpu", data.size, None)
        return None


def write_legacy(path, storages, obj, types_, truncate=0):
    buffer = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(header, buffer, protocol=2)
    _Pickler(buffer, storages, types_).dump(obj)
    pickle.dump(list(storages), buffer, protocol=2)
    for data in storages.values():
        buffer.write(struct.pack("<q", data.size))
        buffer.write(data.tobytes())
    raw = buffer.getvalue()
    path.write_bytes(raw[: len(raw) - truncate] if truncate else raw)


def write_zip(path, storages, obj, types_):
    buffer = io.BytesIO()
    _Pickler(buffer, storages, types_).dump(obj)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", buffer.getvalue())
        for key, data in storages.items():
            archive.writestr(f"archive/data/{key}", data.tobytes())


def write_state_dict(path, arrays, types_):
    """A zip-format checkpoint of `{key: array}` (float32, contiguous)."""
    storages, state = {}, collections.OrderedDict()
    for i, (key, value) in enumerate(arrays.items()):
        value = np.ascontiguousarray(value, dtype="float32")
        storages[str(i)] = value.reshape(-1)
        strides = [int(np.prod(value.shape[j + 1 :])) for j in range(value.ndim)]
        state[key] = Tensor(str(i), 0, value.shape, strides)
    write_zip(path, storages, state, types_)
