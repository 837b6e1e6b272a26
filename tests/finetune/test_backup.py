"""`EpochBackup`: a fine-tuning stage's backup is whole at every moment, so a
run killed while writing it (or stopped by a full disk) still resumes."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from kerazoo.finetune.engine import EpochBackup
from kerazoo.finetune.engine import FinetuneError

# Runs of one `fit`, each in its own process: "first" stops after epoch 1 (its
# backup kept); "full_disk" resumes it with files unable to grow past 4 KiB, so
# that writing epoch 2's backup fails (h5py then dies of a segmentation fault,
# a process cut short mid-write as a kill would leave it).
_RUN = """
import resource, signal, sys
import keras, numpy as np
from kerazoo.finetune.engine import EpochBackup

backup, mode = sys.argv[1:]
rng = np.random.default_rng(0)
x = rng.normal(size=(64, 32)).astype("float32")
y = rng.integers(0, 4, size=64)
model = keras.Sequential(
    [keras.Input((32,)), keras.layers.Dense(64), keras.layers.Dense(4)]
)
model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
              "sparse_categorical_crossentropy")


class Stop(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


if mode == "first":
    try:
        model.fit(x, y, epochs=3, verbose=0, callbacks=[EpochBackup(backup), Stop()])
    except KeyboardInterrupt:
        np.save(backup + ".npy", model.get_weights()[0])
else:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))
    model.fit(x, y, epochs=3, initial_epoch=EpochBackup.completed_epochs(backup),
              verbose=0, callbacks=[EpochBackup(backup)])
    print("the backup was written")
"""


def _run(backup, mode):
    return subprocess.run(
        [sys.executable, "-c", _RUN, str(backup), mode],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_survives_a_write_cut_short(tmp_path):
    backup = tmp_path / "backup"
    first = _run(backup, "first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert EpochBackup.completed_epochs(backup) == 1
    cut = _run(backup, "full_disk")
    assert "the backup was written" not in cut.stdout
    # Epoch 1's backup is whole and named; epoch 2's half-written file is not.
    assert EpochBackup.completed_epochs(backup) == 1
    model = keras.Sequential(
        [keras.Input((32,)), keras.layers.Dense(64), keras.layers.Dense(4)]
    )
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "mse")
    model.fit(
        np.zeros((4, 32)),
        np.zeros((4, 4)),
        epochs=1,
        initial_epoch=1,  # nothing to train: the backup's weights are loaded
        verbose=0,
        callbacks=[EpochBackup(backup)],
    )
    np.testing.assert_array_equal(model.get_weights()[0], np.load(str(backup) + ".npy"))
    assert not backup.exists()  # fit ended normally


def test_unreadable_backup_is_named(tmp_path):
    (tmp_path / "training_metadata.json").write_text('{"epo')
    with pytest.raises(FinetuneError, match="training_metadata.json is not readable"):
        EpochBackup.completed_epochs(tmp_path)
