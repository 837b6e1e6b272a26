import os

# Before TensorFlow is imported (through Keras): keep its start-up logs quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the float32 policy, a fresh Keras session and fixed
    seeds, so that random initial weights and dropout masks repeat.

    Without a forced garbage collection: a full `gc.collect()` walks the whole
    heap of a worker that has built hundreds of models, seconds a test on 2
    cores (a third of the suite's time); Python's own collector still runs."""
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
