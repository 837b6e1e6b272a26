"""kerazoo's layer library must run without TensorFlow: importing it under the JAX
backend must not import TensorFlow (that is how it runs on GPU machines with JAX
and no TensorFlow)."""

import os
import subprocess
import sys

import pytest

MODULES = [
    "kerazoo.layers",
    "kerazoo.optimizers",
    "kerazoo.initializers",
    "kerazoo.models",
    "kerazoo.weights",
    "kerazoo.testing",
]


def _run(code, backend):
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("module", MODULES)
def test_import_under_jax_does_not_import_tensorflow(module):
    pytest.importorskip("jax")
    code = (
        f"import sys, {module}, keras\n"
        "assert keras.backend.backend() == 'jax', keras.backend.backend()\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')\n"
        "assert not leaked, leaked[:5]\n"
        "print('ok')\n"
    )
    result = _run(code, "jax")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]


def test_import_kerazoo_is_cheap():
    code = (
        "import sys, kerazoo\n"
        "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules\n"
        "print(kerazoo.__version__)\n"
    )
    result = _run(code, "tensorflow")
    assert result.returncode == 0, result.stderr[-3000:]
