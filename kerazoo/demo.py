"""The layer-library demo: a small network composed of every kerazoo block,
trained on the embedded digits.

It shows the blocks working together in a functional model, trained, evaluated,
saved as `.keras` and reloaded in safe mode with identical predictions.
"""

import os
import tempfile
import time

import keras
import numpy as np

from kerazoo import layers
from kerazoo.data import load_digits_splits


def build_demo_model(input_shape=(8, 8, 1), num_classes=10, norm_momentum=0.9):
    """A small classifier built from kerazoo blocks.

    Batch-norm momentum is 0.9 rather than Keras's 0.99: the demo trains for a
    few hundred steps, too few for 0.99 moving averages to settle.
    """
    bn = {"norm_momentum": norm_momentum}
    inputs = keras.Input(input_shape, name="image")
    x = keras.layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", use_bias=False, name="stem_conv")(x)
    x = layers.BatchNormalization(momentum=norm_momentum, name="stem_bn")(x)
    x = keras.layers.Activation("relu", name="stem_relu")(x)
    x = layers.ResidualBlock(32, name="residual", **bn)(x)
    x = layers.InceptionBlock(
        16,
        24,
        8,
        filters_3x3_reduce=16,
        filters_5x5_reduce=4,
        filters_pool_proj=8,
        batch_norm=True,
        name="inception",
        **bn,
    )(x)
    x = layers.MBConvBlock(
        64, expand_ratio=4, strides=2, se_ratio=0.25, name="mbconv", **bn
    )(x)
    x = layers.DenseBlock(2, growth_rate=16, name="dense", **bn)(x)
    x = layers.TransitionBlock(compression=0.5, name="transition", **bn)(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(
        x
    )
    return keras.Model(inputs, outputs, name="kerazoo_blocks_demo")


def run_demo(epochs=12, batch_size=32, seed=0, output_dir=None, verbose=2):
    """Trains the demo model on the digits and reports its test accuracy.

    Args:
        epochs: Training epochs.
        batch_size: Mini-batch size.
        seed: Seed of the data split, the initial weights and the shuffling.
        output_dir: If given, the trained model is saved there as
            `demo.keras` (written to a temporary file, then renamed).
        verbose: Keras verbosity of `fit` (2: a line per epoch).

    Returns:
        A dict of results: parameter count, test loss and accuracy, seconds
        taken, and the saved path (or None).
    """
    keras.utils.set_random_seed(seed)
    splits = load_digits_splits(seed=seed)
    (x_train, y_train), (x_val, y_val) = splits["train"], splits["validation"]
    x_test, y_test = splits["test"]

    model = build_demo_model()
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=False,
    )
    start = time.perf_counter()
    model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=verbose,
    )
    seconds = time.perf_counter() - start
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)

    saved = None
    if output_dir is not None:
        saved = save_and_verify(model, output_dir, x_test[:64])
    return {
        "parameters": model.count_params(),
        "train_images": len(x_train),
        "test_images": len(x_test),
        "test_loss": float(test_loss),
        "test_accuracy": float(test_accuracy),
        "train_seconds": seconds,
        "saved": saved,
    }


def save_and_verify(model, output_dir, sample):
    """Saves `model` to OUTPUT_DIR/demo.keras and checks a safe-mode reload
    predicts exactly the same on `sample`."""
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, "demo.keras")
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=output_dir)
    os.close(fd)
    try:
        model.save(tmp)
        reloaded = keras.saving.load_model(tmp, safe_mode=True)
        expected = model.predict(sample, verbose=0)
        got = reloaded.predict(sample, verbose=0)
        if not np.array_equal(expected, got):
            raise RuntimeError(
                "the reloaded demo model predicts differently; not saving it"
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
