import keras
import numpy as np

from kerazoo.models import ScopedModel
from kerazoo.models import scoped_model


def test_scoped_model_keeps_variable_paths_after_reload(tmp_path):
    body = scoped_model(
        "body",
        lambda x: keras.layers.Dense(2, name="fc")(keras.layers.Dense(3)(x)),
        keras.Input((4,)),
    )
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="predictions")(body(inputs)))
    paths = [v.path for v in model.weights]
    assert paths[:2] == ["body/dense/kernel", "body/dense/bias"]
    assert paths[2:4] == ["body/fc/kernel", "body/fc/bias"]
    model.save(tmp_path / "m.keras")
    keras.backend.clear_session()
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(reloaded.get_layer("body"), ScopedModel)
    assert [v.path for v in reloaded.weights] == paths
    x = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
