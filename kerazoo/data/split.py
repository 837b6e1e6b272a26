"""One split of a dataset: what its images are and how one is read.

A split is read by index (`element(i)`, inside a `tf.data` map) when its images
are files or arrays, which lets a pipeline shuffle indices (8 bytes an image)
instead of decoded images, and lets a cache of decoded images be filled in any
order. A `tensorflow-datasets` split is read as a stream of its record files.

Reading a file never raises: each element carries a status, and an empty file, a
file that is no image, or a JPEG or PNG cut short is marked so that the pipeline
skips it and names it (`STATUS`), where `tf.io.decode_image` would have stopped
the run mid-epoch.
"""

import hashlib
import json

import numpy as np

# Status of an element; 0 is "not read yet" in a cache's table. FAILED names a
# file that TensorFlow's decoder failed on (see `ImageStore.attempt`).
OK, EMPTY, NOT_IMAGE, TRUNCATED, FAILED = 1, 2, 3, 4, 5
STATUS = {
    EMPTY: "empty file",
    NOT_IMAGE: "not an image",
    TRUNCATED: "truncated",
    FAILED: "TensorFlow could not decode it",
}
# What the last bytes of a whole file hold, looked for in its last TAIL bytes
# (writers may pad a file after its end marker).
TAIL = 64


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part).encode())
    return h.hexdigest()


class Split:
    """Base of the three kinds of split.

    Attributes:
        size: Number of images.
        labels: int32 label of each image (None when unknown before reading).
        channels: Channels of the decoded images (1 is made RGB after resizing).
        random_access: Whether `element(index)` reads image `index`.
    """

    random_access = True
    channels = 3

    def __len__(self):
        return self.size

    def key(self):
        """A digest of the split's contents: equal keys, equal images."""
        raise NotImplementedError

    def name(self, index):
        """What image `index` is, for messages (a path, or an index)."""
        return f"#{index}"

    def shard(self, index, count):
        """Images `index`, `index + count`, ...: part `index` of `count`."""
        raise NotImplementedError


class ArraySplit(Split):
    """Images held in a uint8 array `(n, h, w, c)`."""

    def __init__(self, images, labels):
        self.images = np.asarray(images, np.uint8)
        self.labels = np.asarray(labels, np.int32)
        self.size = len(self.labels)
        self.channels = self.images.shape[-1]

    def key(self):
        return _digest(
            "arrays",
            list(self.images.shape),
            self.images.tobytes(),
            self.labels.tobytes(),
        )

    def element(self, index):
        import tensorflow as tf

        images, labels = _constants(self, self.images, self.labels)
        return (
            tf.gather(images, index),
            tf.gather(labels, index),
            tf.constant(OK, tf.int32),
        )

    def shard(self, index, count):
        return ArraySplit(self.images[index::count], self.labels[index::count])


class FileSplit(Split):
    """Image files and their labels.

    Args:
        entries: `scan.FileEntry` of each image (path, size, mtime).
        labels: Label of each.
    """

    def __init__(self, entries, labels):
        self.entries = list(entries)
        self.labels = np.asarray(labels, np.int32)
        self.size = len(self.entries)

    def key(self):
        if getattr(self, "_key", None) is None:  # a million files: once
            self._key = _digest(
                "files",
                [(e.path, e.size, e.mtime_ns) for e in self.entries],
                self.labels.tobytes(),
            )
        return self._key

    def name(self, index):
        return self.entries[index].path

    @property
    def paths(self):
        return [e.path for e in self.entries]

    def element(self, index):
        import tensorflow as tf

        paths, labels = _constants(self, np.asarray(self.paths or [""]), self.labels)
        contents = tf.io.read_file(tf.gather(paths, index))
        image, status = decode_checked(contents)
        return image, tf.gather(labels, index), status

    def shard(self, index, count):
        return FileSplit(self.entries[index::count], self.labels[index::count])


class StreamSplit(Split):
    """A `tensorflow-datasets` split, read from its record files in order.

    Args:
        builder: The dataset's `tfds` builder (prepared).
        spec: Split spec (`"train[:90%]"`).
        size: Number of examples.
        channels: Of its image feature.
        shard_index, shard_count: Read part `shard_index` of `shard_count`.
    """

    random_access = False

    def __init__(self, builder, spec, size, channels, shard_index=0, shard_count=1):
        self.builder = builder
        self.spec = spec
        self.size = size
        self.channels = channels
        self.labels = None
        self.shard_index, self.shard_count = shard_index, shard_count

    def key(self):
        return _digest(
            "tfds",
            self.builder.info.full_name,
            str(self.builder.data_dir),
            self.spec,
            self.shard_index,
            self.shard_count,
        )

    def stream(self, shuffle_files=False, seed=0):
        """`(uint8 image, int32 label)` examples, in file order unless
        `shuffle_files` (seeded)."""
        import tensorflow as tf
        import tensorflow_datasets as tfds

        spec = self.spec
        if self.shard_count > 1:
            spec = tfds.even_splits(spec, self.shard_count)[self.shard_index]
        read_config = tfds.ReadConfig(shuffle_seed=seed) if shuffle_files else None
        ds = self.builder.as_dataset(
            split=spec,
            as_supervised=True,
            shuffle_files=shuffle_files,
            read_config=read_config,
        )
        return ds.map(
            lambda x, y: (x, tf.cast(y, tf.int32)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )

    def shard(self, index, count):
        size = len(range(index, self.size, count))
        return StreamSplit(self.builder, self.spec, size, self.channels, index, count)


def _constants(split, *arrays):
    """The arrays as eager tensors, made once per split: any `tf.data` graph
    that reads the split captures the same ones."""
    import tensorflow as tf

    cached = getattr(split, "_tensors", None)
    if cached is None:
        with tf.init_scope():
            cached = split._tensors = tuple(tf.constant(a) for a in arrays)
    return cached


def _contains(data, pattern):
    """Whether the uint8 vector `data` holds the bytes `pattern`."""
    import tensorflow as tf

    n = len(pattern)
    windows = tf.stack([data[i : tf.size(data) - n + 1 + i] for i in range(n)], -1)
    return tf.reduce_any(tf.reduce_all(tf.equal(windows, list(pattern)), axis=-1))


def decode_checked(contents):
    """Decodes an encoded image unless its bytes show it cannot be: empty, no
    known image signature, or a JPEG / PNG whose end marker is missing (a file
    cut short, which `tf.io.decode_image` fails on).

    Returns:
        `(uint8 image (h, w, 3), int32 status)`; a 1x1 black image when the
        status is not `OK`.
    """
    import tensorflow as tf

    length = tf.strings.length(contents)
    head = tf.strings.substr(contents, 0, 8)
    tail = tf.io.decode_raw(
        tf.strings.substr(contents, tf.maximum(length - TAIL, 0), TAIL), tf.uint8
    )
    is_jpeg = tf.equal(tf.strings.substr(head, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(head, b"\x89PNG\r\n\x1a\n")
    is_other = tf.logical_or(
        tf.equal(tf.strings.substr(head, 0, 4), b"GIF8"),
        tf.equal(tf.strings.substr(head, 0, 2), b"BM"),
    )
    jpeg_end = _contains(tail, b"\xff\xd9")
    png_end = _contains(tail, b"IEND")
    status = tf.case(
        [
            (tf.equal(length, 0), lambda: tf.constant(EMPTY)),
            (
                tf.logical_not(is_jpeg | is_png | is_other),
                lambda: tf.constant(NOT_IMAGE),
            ),
            (is_jpeg & tf.logical_not(jpeg_end), lambda: tf.constant(TRUNCATED)),
            (is_png & tf.logical_not(png_end), lambda: tf.constant(TRUNCATED)),
        ],
        default=lambda: tf.constant(OK),
    )

    def decode():
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        return image

    image = tf.cond(tf.equal(status, OK), decode, lambda: tf.zeros([1, 1, 3], tf.uint8))
    return image, status
