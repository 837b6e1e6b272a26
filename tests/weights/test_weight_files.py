"""`create_model(name, weights=PATH)` for .keras and .weights.h5 files: all or
nothing, mismatches named, a new head only on request."""

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.weights import WeightMismatchError
from kerazoo.weights.files import load_weights_file

SHAPE = (32, 32, 3)


def values(model):
    return {v.path: keras.ops.convert_to_numpy(v) for v in model.weights}


@pytest.fixture(params=[".keras", ".weights.h5"])
def saved(request, tmp_path):
    model = create_model("resnet20", num_classes=3, input_shape=SHAPE)
    path = tmp_path / f"model{request.param}"
    if request.param == ".keras":
        model.save(path)
    else:
        model.save_weights(path)
    return model, path


def test_same_architecture_loads_everything(saved):
    source, path = saved
    model = create_model("resnet20", num_classes=3, input_shape=SHAPE, weights=path)
    x = np.random.default_rng(0).uniform(0, 255, (2, *SHAPE)).astype("float32")
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), source.predict(x, verbose=0)
    )


def test_other_class_count_is_refused_then_reset_on_request(saved):
    source, path = saved
    with pytest.raises(
        WeightMismatchError, match=r"predictions/kernel.*\(64, 5\).*\(64, 3\)"
    ) as info:
        create_model("resnet20", num_classes=5, input_shape=SHAPE, weights=path)
    assert "reset_head=True" in str(info.value)
    model = create_model(
        "resnet20", num_classes=5, input_shape=SHAPE, weights=path, reset_head=True
    )
    ours, theirs = values(model), values(source)
    for name, value in ours.items():
        if name.startswith("predictions/"):
            assert value.shape[-1] == 5
        else:
            np.testing.assert_array_equal(value, theirs[name], err_msg=name)


def test_mismatch_loads_nothing(saved):
    _, path = saved
    model = create_model("resnet32", num_classes=3, input_shape=SHAPE)
    before = values(model)
    with pytest.raises(WeightMismatchError, match="Nothing was loaded"):
        load_weights_file(
            model,
            path,
            lambda classes: create_model("resnet32", classes, input_shape=SHAPE),
        )
    after = values(model)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no weights file"):
        create_model("resnet20", weights=tmp_path / "gone.keras")
