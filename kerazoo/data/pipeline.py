"""`tf.data` input pipelines whose memory does not grow with the dataset.

For a split read by index (files, arrays), an epoch is:

1. a seeded permutation of the indices (8 bytes an image, reshuffled every
   epoch when training; in order otherwise);
2. for each index, the cached uint8 image when there is one, else the file read,
   checked, decoded and resized (parallel, `AUTOTUNE`), then cached;
3. broken files skipped (and named once, see `ImageStore.skipped`);
4. batches, cast to float32 (values 0-255), augmented, prefetched.

The cache is `kerazoo.data.cache.ImageStore` (memory, disk or none), so every
cache mode gives the same images in the same order. A `tfds:` split is
streamed from its record files (shuffled file order when training) with a
bounded shuffle buffer of decoded images (`shuffle_buffer`).
"""

import sys

import numpy as np
import tensorflow as tf

import kerazoo.data.split as split_lib
from kerazoo.data.cache import ImageStore

SHUFFLE_BUFFER = 1024
LOOK_UP = 64  # cache look-ups per Python call


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


def resize_uint8(image, image_size):
    """An RGB uint8 image of `image_size` (antialiased bilinear, rounded)."""
    image = tf.image.resize(
        tf.cast(image, "float32"), image_size, method="bilinear", antialias=True
    )
    image = tf.cast(tf.round(tf.clip_by_value(image, 0.0, 255.0)), tf.uint8)
    if image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    return image


class Pipelines:
    """The pipelines of one dataset at one image size, sharing one cache per
    split.

    Args:
        data: `kerazoo.data.ImageData`.
        image_size: `(height, width)` the model takes.
        cache: `"memory"`, `"disk"` or `"none"` (see `kerazoo.data.cache`).
        cache_dir: Folder of a disk cache.
        shuffle_buffer: Decoded images a streamed (`tfds:`) split shuffles
            through when training.
        deterministic: Keep the order of parallel work (slower when decoding
            times vary); order is seeded either way.
        log: Where warnings (a skipped file) go.
    """

    def __init__(
        self,
        data,
        image_size,
        *,
        cache="memory",
        cache_dir=None,
        shuffle_buffer=SHUFFLE_BUFFER,
        deterministic=True,
        log=None,
    ):
        if cache not in ("memory", "disk", "none"):
            raise ValueError(f"cache: {cache!r}; allowed: memory, disk, none")
        if cache == "disk" and cache_dir is None:
            raise ValueError("cache: disk needs a cache_dir")
        self.data = data
        self.image_size = tuple(image_size)
        self.cache = cache
        self.cache_dir = cache_dir
        self.shuffle_buffer = int(shuffle_buffer)
        self.deterministic = deterministic
        self.log = log or (lambda line: print(line, file=sys.stderr))
        self._stores = {}

    def store(self, split):
        """The `ImageStore` of a split (made on first use)."""
        store = self._stores.get(split)
        if store is None:
            source = self.data.splits[split]
            shape = (*self.image_size, 3)
            if self.cache == "disk":
                import hashlib
                import pathlib

                key = hashlib.sha256(
                    f"{source.key()} {shape} resize-v1".encode()
                ).hexdigest()
                path = pathlib.Path(self.cache_dir) / f"{split}-{key[:16]}"
                store = ImageStore(source.size, shape, path, key=key)
            else:
                store = ImageStore(source.size, shape, pixels=self.cache == "memory")
            self._stores[split] = store
        return store

    def skipped(self):
        """`[(path, reason)]` of every file found broken so far."""
        out = []
        for name, store in self._stores.items():
            out.extend(store.skipped(self.data.splits[name].name))
        return out

    def close(self):
        for store in self._stores.values():
            store.close()

    def dataset(
        self,
        split,
        batch_size,
        *,
        training=False,
        augment=None,
        seed=0,
        nan_batch=None,
        start=0,
        with_index=False,
        ordered=False,
    ):
        """A batched pipeline over one split.

        Args:
            split: `"train"`, `"validation"` or `"test"`.
            batch_size: Images per batch.
            training: Shuffle (seeded, reshuffled every epoch) and augment.
            augment: `recipes.Augment` applied to training batches, or None.
            seed: Seed of the shuffle and the augmentation.
            nan_batch: Index of a training batch, counted across epochs, whose
                images become NaN (fault injection for tests).
            start: First image (in order; not with `training`), to go on from
                where an interrupted pass stopped.
            with_index: Batches are `(images, labels, indices)`.
            ordered: Keep the order of parallel work whatever `deterministic`
                says (two passes over the split then see the same order).

        Returns:
            A `tf.data.Dataset` of `(float32 images, int32 labels)` batches.
        """
        source = self.data.splits[split]
        if not source.random_access:
            stream = source.stream(shuffle_files=training, seed=seed)
            if start or with_index:
                stream = stream.enumerate().skip(start)
                stream = stream.map(lambda i, xy: (xy[0], xy[1], i))
            dataset = stream.map(
                lambda x, *rest: (resize_uint8(x, self.image_size), *rest),
                num_parallel_calls=tf.data.AUTOTUNE,
                deterministic=self.deterministic or ordered or with_index,
            )
            if training:
                dataset = dataset.shuffle(
                    self.shuffle_buffer, seed=seed, reshuffle_each_iteration=True
                )
        else:
            indices = tf.data.Dataset.range(start, source.size)
            if training:
                indices = indices.shuffle(
                    source.size, seed=seed, reshuffle_each_iteration=True
                )
            dataset = self._images(indices, split, with_index, ordered)
        layers = augmentation_layers(augment, seed) if training else []
        return batched(dataset, batch_size, layers=layers, nan_batch=nan_batch)

    def _images(self, indices, split, with_index=False, ordered=False):
        source = self.data.splits[split]
        store = self.store(split)
        labels = tf.constant(source.labels)
        shape = (*self.image_size, 3)
        warn = self.log

        def put(index, pixels, status):
            status = store.put(index, pixels, status)
            if status > split_lib.OK:
                warn(
                    f"kerazoo: skipping {source.name(int(index))} "
                    f"({split_lib.STATUS[int(status)]})"
                )
            return status

        def look_up(index):
            cached, status = tf.numpy_function(
                store.get_many, [index], [tf.uint8, tf.int32], stateful=True
            )
            cached.set_shape((None, *shape))
            status.set_shape((None,))
            return index, cached, status

        def load(index, cached, status):
            def read():
                mark = tf.numpy_function(store.attempt, [index], tf.int32)
                with tf.control_dependencies([mark]):
                    image, _, found = source.element(index)
                image = resize_uint8(image, self.image_size)
                found = tf.numpy_function(put, [index, image, found], tf.int32)
                found.set_shape(())
                return image, found

            image, status = tf.cond(tf.equal(status, 0), read, lambda: (cached, status))
            return image, tf.gather(labels, index), status, index

        # Cached images are looked up LOOK_UP at a time (one Python call, not one
        # an image); those not cached yet are read and decoded one by one.
        dataset = (
            indices.batch(LOOK_UP)
            .map(look_up)
            .unbatch()
            .map(
                load,
                num_parallel_calls=tf.data.AUTOTUNE,
                # A pass that records how far it got needs its order kept.
                deterministic=self.deterministic or ordered or with_index,
            )
        )
        # A file whose bytes look whole but that the decoder fails on: dropped
        # here, named by the FAILED mark it keeps in the store.
        dataset = dataset.ignore_errors()
        dataset = dataset.filter(lambda x, y, status, i: tf.equal(status, split_lib.OK))
        if with_index:
            return dataset.map(lambda x, y, status, i: (x, y, i))
        return dataset.map(lambda x, y, status, i: (x, y))


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
    """A batched pipeline over one split of an `ImageData`, with its own
    in-memory cache (`cache=True`) or none: for a run, `Pipelines` shares the
    caches between pipelines and can keep them on disk.

    Returns:
        A `tf.data.Dataset` of `(float32 images, int32 labels)` batches.
    """
    pipelines = Pipelines(data, image_size, cache="memory" if cache else "none")
    return pipelines.dataset(
        split,
        batch_size,
        training=training,
        augment=augment,
        seed=seed,
        nan_batch=nan_batch,
    )


def batched(
    dataset, batch_size, *, training=False, size=None, layers=(), seed=0, nan_batch=None
):
    """Shuffles (when `training`: `size` elements, seeded, reshuffled every
    epoch), batches, casts images to float32, augments and prefetches."""
    if training:
        dataset = dataset.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size).map(
        lambda x, *rest: (tf.cast(x, "float32"), *rest),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    for layer in layers:
        dataset = dataset.map(
            lambda x, *rest, layer=layer: (layer(x, training=True), *rest),
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


def feature_pipeline(features, labels, batch_size, *, training=False, seed=0):
    """Batches of `(features, labels)` read by index from a `FeatureFile` (or
    arrays), shuffled as an image pipeline of the same size and seed would be:
    the head trained on them sees the images' order."""
    n = len(labels)
    indices = tf.data.Dataset.range(n)
    if training:
        indices = indices.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    # An image pipeline's length is unknown (broken files are dropped as they
    # are found), and Keras's `fit` starts its iterators, so its reshuffles, at
    # other epochs for a dataset of unknown length than for one of known length:
    # this one's length is made unknown too, so the head sees the images' order
    # in every epoch.
    indices = indices.filter(lambda i: True)
    labels = np.asarray(labels, np.int32)
    dim = features.shape[1]

    def read(batch):
        return np.asarray(_rows(features, batch), np.float32), labels[batch]

    def load(batch):
        x, y = tf.numpy_function(read, [batch], [tf.float32, tf.int32], stateful=False)
        x.set_shape((None, dim))
        y.set_shape((None,))
        return x, y

    return indices.batch(batch_size).map(load).prefetch(tf.data.AUTOTUNE)


def _rows(features, index):
    if hasattr(features, "rows_at"):
        return features.rows_at(index)
    return features[index]
