"""`tf.data` input pipelines whose memory does not grow with the dataset.

For a split read by index (files, arrays), an epoch is:

1. a seeded permutation of the indices (8 bytes an image, reshuffled every
   epoch when training; in order otherwise);
2. for each index, the cached uint8 image when there is one, else the file read,
   checked, decoded and resized (parallel, `AUTOTUNE`), then cached;
3. broken files skipped (and named once, see `ImageStore.skipped`);
4. batches, cast to float32 (values 0-255), augmented (`augmentation_layers`),
   mixed with MixUp or CutMix (`BatchMix`: labels one-hot), prefetched.

The cache is `kerazoo.data.cache.ImageStore` (memory, disk or none), so every
cache mode gives the same images in the same order. A `tfds:` split is
streamed from its record files (shuffled file order when training) with a
bounded shuffle buffer of decoded images (`shuffle_buffer`).
"""

import sys
import zlib

import numpy as np
import tensorflow as tf

import kerazoo.data.split as split_lib
from kerazoo.data.cache import ImageStore

SHUFFLE_BUFFER = 1024
LOOK_UP = 64  # cache look-ups per Python call


# Keras's AugMix draws its chains' operations with Python's `random` when it is
# traced, so in a `tf.data` map every batch would get the same operations: the
# pipeline traces it this many times and runs one trace, drawn, per batch. Each
# trace costs about 3 s of pipeline start-up on a 2-core CPU.
AUGMIX_VARIANTS = 8


def augmentation_layers(augment, seed=0):
    """Keras preprocessing layers for a `recipes.Augment` (empty when off), in
    the order they apply: random_resized_crop, flip, rotation, zoom,
    translation, rand_augment, aug_mix, contrast, color_jitter, random_erasing.
    Each takes and gives float32 batches with values in 0-255."""
    import keras

    layers = []
    if augment is None:
        return layers
    # float32 whatever the run's dtype policy: the images stay 0-255 floats.
    common = {"seed": seed, "dtype": "float32"}
    value_range = (0, 255)
    if augment.random_resized_crop is not None:
        crop = augment.random_resized_crop
        layers.append(RandomResizedCrop(crop.scale, crop.ratio, seed=seed))
    if augment.flip != "none":
        mode = {"both": "horizontal_and_vertical"}.get(augment.flip, augment.flip)
        layers.append(keras.layers.RandomFlip(mode, **common))
    if augment.rotation:
        layers.append(
            keras.layers.RandomRotation(augment.rotation, fill_mode="nearest", **common)
        )
    if augment.zoom:
        layers.append(
            keras.layers.RandomZoom(augment.zoom, fill_mode="nearest", **common)
        )
    if augment.translation:
        layers.append(
            keras.layers.RandomTranslation(
                augment.translation,
                augment.translation,
                fill_mode="nearest",
                **common,
            )
        )
    if augment.rand_augment is not None:
        layers.append(
            keras.layers.RandAugment(
                value_range=value_range,
                num_ops=augment.rand_augment.layers,
                factor=augment.rand_augment.magnitude,
                **common,
            )
        )
    if augment.aug_mix is not None:
        mix = augment.aug_mix
        layer = keras.layers.AugMix(
            value_range=value_range,
            num_chains=mix.width,
            chain_depth=mix.depth,
            factor=mix.severity / 10,
            alpha=mix.alpha,
            **common,
        )
        layers.append(Retraced(layer, AUGMIX_VARIANTS, seed=seed))
    if augment.contrast:
        layers.append(
            keras.layers.RandomContrast(
                augment.contrast, value_range=value_range, **common
            )
        )
    jitter = augment.color_jitter
    if jitter is not None and jitter.enabled:
        saturation = None
        if jitter.saturation:
            # Keras draws u and multiplies saturation by u / (1 - u).
            s = jitter.saturation
            saturation = ((1 - s) / (2 - s), (1 + s) / (2 + s))
        layers.append(
            keras.layers.RandomColorJitter(
                value_range=value_range,
                brightness_factor=jitter.brightness or None,
                contrast_factor=jitter.contrast or None,
                saturation_factor=saturation,
                # Keras shifts hue by up to half its factor, either way.
                hue_factor=2 * jitter.hue or None,
                **common,
            )
        )
    if augment.random_erasing is not None:
        erasing = augment.random_erasing
        layers.append(
            keras.layers.RandomErasing(
                # A single factor p would erase with a probability drawn in [0, p].
                factor=(erasing.probability, erasing.probability),
                scale=erasing.scale,
                fill_value=None if erasing.fill == "noise" else float(erasing.fill),
                value_range=value_range,
                **common,
            )
        )
    return layers


def _generator(seed, purpose):
    """A seeded `tf.random.Generator`, its own stream for each purpose."""
    return tf.random.Generator.from_seed(
        seed * 1_000_003 + zlib.crc32(purpose.encode())
    )


class RandomResizedCrop:
    """A random part of each image resized back to the image's size: the crop's
    area is a fraction `scale` of the image's and its aspect ratio (width /
    height, drawn log-uniform) is in `ratio`, ten tries per image, as
    torchvision and timm sample it; when no try fits, the whole image cut to
    the nearest allowed ratio. Keras has no such layer; this one runs in a
    `tf.data` pipeline (one `tf.image.crop_and_resize` a batch), never in a
    model, so it is not a serialisable layer.

    Args:
        scale: `(min, max)` fraction of the image's area.
        ratio: `(min, max)` width / height.
        seed: Seed of the draws.
    """

    ATTEMPTS = 10

    def __init__(self, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), seed=0):
        self.scale = tuple(float(v) for v in scale)
        self.ratio = tuple(float(v) for v in ratio)
        self.generator = _generator(seed, "random_resized_crop")

    def __call__(self, images, training=True):
        if not training:
            return images
        shape = tf.shape(images)
        n = shape[0]
        h, w = tf.cast(shape[1], "float32"), tf.cast(shape[2], "float32")
        draw = self.generator.uniform
        area = draw((n, self.ATTEMPTS), *self.scale) * h * w
        ratio = tf.exp(draw((n, self.ATTEMPTS), *np.log(self.ratio)))
        width, height = tf.sqrt(area * ratio), tf.sqrt(area / ratio)
        fits = (width <= w) & (height <= h)
        first = tf.argmax(tf.cast(fits, "int32"), axis=1, output_type=tf.int32)
        found = tf.reduce_any(fits, axis=1)
        low, high = self.ratio
        width = tf.where(
            found, tf.gather(width, first, batch_dims=1), tf.minimum(w, h * high)
        )
        height = tf.where(
            found, tf.gather(height, first, batch_dims=1), tf.minimum(h, w / low)
        )
        width, height = tf.maximum(width, 1.0), tf.maximum(height, 1.0)
        x0 = tf.where(found, draw((n,)), 0.5) * (w - width)
        y0 = tf.where(found, draw((n,)), 0.5) * (h - height)
        # crop_and_resize samples from y1 * (h - 1) to y2 * (h - 1): the crop's
        # first and last pixel centres.
        boxes = tf.stack(
            [
                y0 / (h - 1),
                x0 / (w - 1),
                (y0 + height - 1) / (h - 1),
                (x0 + width - 1) / (w - 1),
            ],
            axis=1,
        )
        out = tf.image.crop_and_resize(
            images, boxes, tf.range(n), shape[1:3], method="bilinear"
        )
        out.set_shape(images.shape)
        return out


class Retraced:
    """Runs one of `variants` traces of `layer`, drawn per batch: for a layer
    that makes some of its random choices in Python, which a traced function
    (a `tf.data` map) would otherwise fix for the whole run. Each branch of
    `tf.switch_case` is traced on its own; only the drawn one runs.

    Args:
        layer: A Keras preprocessing layer.
        variants: Traces to draw from.
        seed: Seed of the draw.
    """

    def __init__(self, layer, variants, seed=0):
        self.layer = layer
        self.variants = int(variants)
        self.generator = _generator(seed, f"retraced {layer.name}")

    def __call__(self, images, training=True):
        if not training:
            return images
        index = self.generator.uniform((), 0, self.variants, dtype="int32")
        branches = [
            lambda: self.layer(images, training=True) for _ in range(self.variants)
        ]
        out = tf.switch_case(index, branches)
        out.set_shape(images.shape)
        return out


class BatchMix:
    """MixUp and CutMix of training batches with Keras's `MixUp` and `CutMix`
    layers, on one-hot labels (made here). With both, each batch picks one of
    the two (even odds), then applies it with its probability; a batch left
    unmixed keeps its plain one-hot labels. Every label row sums to 1.

    Args:
        num_classes: Length of the one-hot labels.
        mixup: `recipes.MixUp` or None.
        cutmix: `recipes.CutMix` or None.
        seed: Seed of the layers and of the per-batch draws.
    """

    def __init__(self, num_classes, mixup=None, cutmix=None, seed=0):
        import keras

        self.num_classes = int(num_classes)
        self.mixes = []
        if mixup is not None:
            layer = keras.layers.MixUp(alpha=mixup.alpha, seed=seed, dtype="float32")
            self.mixes.append((layer, mixup.probability))
        if cutmix is not None:
            # Keras draws CutMix's alpha in [factor[0], factor[1]]: fixed here.
            layer = keras.layers.CutMix(
                factor=(cutmix.alpha, cutmix.alpha), seed=seed, dtype="float32"
            )
            self.mixes.append((layer, cutmix.probability))
        self.generator = _generator(seed, "batch_mix")

    def __call__(self, images, labels):
        labels = tf.one_hot(labels, self.num_classes, dtype="float32")
        if not self.mixes:
            return images, labels
        pick, chance = tf.unstack(self.generator.uniform((2,)))
        which = tf.minimum(
            tf.cast(pick * len(self.mixes), "int32"), len(self.mixes) - 1
        )
        probability = tf.gather([p for _, p in self.mixes], which)
        index = tf.where(chance < probability, which + 1, 0)

        def mixed(layer):
            def branch():
                out = layer({"images": images, "labels": labels}, training=True)
                return out["images"], out["labels"]

            return branch

        branches = [lambda: (images, labels)] + [mixed(m) for m, _ in self.mixes]
        images_out, labels_out = tf.switch_case(index, branches)
        images_out.set_shape(images.shape)
        labels_out.set_shape(labels.shape)
        return images_out, labels_out


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
        mixup=None,
        cutmix=None,
        one_hot=False,
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
            mixup, cutmix: `recipes.MixUp` / `recipes.CutMix` applied to
                training batches (labels one-hot), or None (`BatchMix`).
            one_hot: Labels as float32 one-hot rows (always with a mix).
            seed: Seed of the shuffle and the augmentation.
            nan_batch: Index of a training batch, counted across epochs, whose
                images become NaN (fault injection for tests).
            start: First image (in order; not with `training`), to go on from
                where an interrupted pass stopped.
            with_index: Batches are `(images, labels, indices)`.
            ordered: Keep the order of parallel work whatever `deterministic`
                says (two passes over the split then see the same order).

        Returns:
            A `tf.data.Dataset` of `(float32 images, labels)` batches: int32
            labels, or float32 `(batch, classes)` ones with `one_hot` or a mix.
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
        layers, mix = [], None
        if training:
            layers = augmentation_layers(augment, seed)
            if mixup is not None or cutmix is not None:
                mix = BatchMix(self.data.num_classes, mixup, cutmix, seed=seed)
        if mix is None and one_hot:
            mix = BatchMix(self.data.num_classes)
        return batched(dataset, batch_size, layers=layers, mix=mix, nan_batch=nan_batch)

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
        # here, named by the note of its attempt that it leaves in the store.
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
    mixup=None,
    cutmix=None,
    one_hot=False,
    seed=0,
    cache=True,
    nan_batch=None,
):
    """A batched pipeline over one split of an `ImageData`, with its own
    in-memory cache (`cache=True`) or none: for a run, `Pipelines` shares the
    caches between pipelines and can keep them on disk.

    Returns:
        A `tf.data.Dataset` of `(float32 images, labels)` batches
        (`Pipelines.dataset`).
    """
    pipelines = Pipelines(data, image_size, cache="memory" if cache else "none")
    return pipelines.dataset(
        split,
        batch_size,
        training=training,
        augment=augment,
        mixup=mixup,
        cutmix=cutmix,
        one_hot=one_hot,
        seed=seed,
        nan_batch=nan_batch,
    )


def batched(
    dataset,
    batch_size,
    *,
    training=False,
    size=None,
    layers=(),
    mix=None,
    seed=0,
    nan_batch=None,
):
    """Shuffles (when `training`: `size` elements, seeded, reshuffled every
    epoch), batches, casts images to float32, augments (`layers`, then values
    clipped to 0-255), maps `(images, labels)` through `mix` (a `BatchMix`:
    one-hot labels, mixed batches) and prefetches."""
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
    if layers:
        # Some of Keras's layers (RandAugment) overshoot 255 by a rounding error.
        dataset = dataset.map(
            lambda x, *rest: (tf.clip_by_value(x, 0.0, 255.0), *rest),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    if mix is not None:
        dataset = dataset.map(
            lambda x, y, *rest: (*mix(x, y), *rest),
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


def feature_pipeline(
    features, labels, batch_size, *, training=False, seed=0, num_classes=None
):
    """Batches of `(features, labels)` read by index from a `FeatureFile` (or
    arrays), shuffled as an image pipeline of the same size and seed would be:
    the head trained on them sees the images' order. With `num_classes` the
    labels are float32 one-hot rows."""
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
        if num_classes is not None:
            y = tf.one_hot(y, num_classes, dtype="float32")
        return x, y

    return indices.batch(batch_size).map(load).prefetch(tf.data.AUTOTUNE)


def _rows(features, index):
    if hasattr(features, "rows_at"):
        return features.rows_at(index)
    return features[index]
