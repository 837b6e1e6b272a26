"""`tf.data` input pipelines: resize, cache, shuffle, batch, augment, prefetch."""

import tensorflow as tf


def augmentation_layers(augment, seed=0):
    """Keras preprocessing layers for a `recipes.Augment` (empty when off)."""
    import keras

    layers = []
    if augment is None:
        return layers
    if augment.flip != "none":
        mode = {"both": "horizontal_and_vertical"}.get(augment.flip, augment.flip)
        layers.append(keras.layers.RandomFlip(mode, seed=seed))
    if augment.rotation:
        layers.append(
            keras.layers.RandomRotation(
                augment.rotation, fill_mode="nearest", seed=seed
            )
        )
    if augment.zoom:
        layers.append(
            keras.layers.RandomZoom(augment.zoom, fill_mode="nearest", seed=seed)
        )
    if augment.translation:
        layers.append(
            keras.layers.RandomTranslation(
                augment.translation, augment.translation, fill_mode="nearest", seed=seed
            )
        )
    if augment.contrast:
        layers.append(
            keras.layers.RandomContrast(
                augment.contrast, value_range=(0, 255), seed=seed
            )
        )
    return layers


def resized(dataset, image_size, channels):
    """Float32 RGB images of `image_size`, values kept in 0-255."""

    def resize(image, label):
        image = tf.image.resize(
            tf.cast(image, "float32"), image_size, method="bilinear", antialias=True
        )
        image = tf.clip_by_value(image, 0.0, 255.0)
        if channels == 1:
            image = tf.image.grayscale_to_rgb(image)
        return image, label

    return dataset.map(resize, num_parallel_calls=tf.data.AUTOTUNE)


def image_pipeline(
    data,
    split,
    image_size,
    batch_size,
    *,
    training=False,
    augment=None,
    seed=0,
    cache=True,
    nan_batch=None,
):
    """A batched pipeline over one split of an `ImageData`.

    Args:
        data: `kerazoo.data.ImageData`.
        split: `"train"`, `"validation"` or `"test"`.
        image_size: `(height, width)` the model takes.
        batch_size: Images per batch.
        training: Shuffle (seeded, reshuffled every epoch) and augment.
        augment: `recipes.Augment` applied to training batches, or None.
        seed: Seed of the shuffle and the augmentation.
        cache: Keep the resized images in memory after the first epoch.
        nan_batch: Index of a training batch, counted across epochs, whose images
            become NaN (fault injection for tests).

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches.
    """
    dataset = resized(data.splits[split], image_size, data.channels)
    if cache:
        dataset = dataset.cache()
    return batched(
        dataset,
        data.sizes[split],
        batch_size,
        training=training,
        layers=augmentation_layers(augment, seed) if training else [],
        seed=seed,
        nan_batch=nan_batch,
    )


def batched(
    dataset, size, batch_size, *, training=False, layers=(), seed=0, nan_batch=None
):
    """Shuffles (when training), batches, augments and prefetches. Two datasets
    of the same size and seed are shuffled in the same order, which is what makes
    training on cached features match training on images."""
    if training:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    for layer in layers:
        dataset = dataset.map(
            lambda x, y, layer=layer: (layer(x, training=True), y),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if nan_batch is not None:
        # Counts batches across epochs: batch `nan_batch` of the whole stage.
        counter = tf.Variable(-1, dtype="int64", trainable=False)

        def poison(x, y):
            index = counter.assign_add(1)
            return tf.where(index == nan_batch, x * float("nan"), x), y

        dataset = dataset.map(poison)
    return dataset.prefetch(tf.data.AUTOTUNE)
