import gc
import os

# Before TensorFlow is imported (through Keras): keep its start-up logs quiet.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import pytest

# Tests run in this process, and how often the frozen objects are collected.
_TESTS = [0]
_THAW = 50


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Each test starts with the float32 policy, a fresh Keras session and fixed
    seeds, so that random initial weights and dropout masks repeat.

    Without a full garbage collection each time: `gc.collect()` walks the whole
    heap, and in a worker that has built hundreds of models that took seconds a
    test on 2 cores (a third of the suite's time). After each test its own
    garbage is collected and what survives is frozen (`gc.freeze()`), so that
    later collections, the library's own `clear_session()` calls included, walk
    only what the current test made; every `_THAW` tests the frozen objects are
    collected once, so that garbage left by module fixtures does not pile up."""
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(0)
    yield
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session(free_memory=False)
    _TESTS[0] += 1
    if _TESTS[0] % _THAW == 0:
        gc.unfreeze()
    gc.collect()
    gc.freeze()
