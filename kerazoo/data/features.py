"""Stage 1's body features on disk: one `.npy` file per split, written chunk by
chunk as the features are computed.

`FeatureFile` is a float32 `.npy` of `(images, dim)` with a side file
(`.json`) that says how far it is written and which content key it belongs
to (the body, its weights, the input size, the preprocessing and the split's
files), and a side file (`.index`) with the image each row is of (a broken
file leaves no row, so row `r` is not always image `r`). Rows are written and
read with `os.pwrite` / `os.pread`, so neither the features nor the file's
pages count in the process's memory. A pass killed halfway goes on from its
last finished chunk; a file whose key differs is started again.
"""

import json
import os
import pathlib

import numpy as np

from kerazoo._files import replace_text


class FeatureFile:
    """Features of one split (see the module docstring).

    Args:
        path: The `.npy` file.
        rows: Images of the split (an upper bound: broken files leave rows out).
        dim: Features per image.
        key: Content key; a file made for another key is started again.
    """

    def __init__(self, path, rows, dim, key):
        self.path = pathlib.Path(path)
        self.meta_path = self.path.with_suffix(".json")
        self.labels_path = self.path.with_suffix(".labels")
        self.index_path = self.path.with_suffix(".index")
        self.key = key
        self.dim = int(dim)
        self.capacity = int(rows)
        meta = self._read_meta()
        if meta is None or not self.path.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.lib.format.open_memmap(
                self.path, mode="w+", dtype=np.float32, shape=(self.capacity, self.dim)
            ).flush()
            meta = {
                "key": key,
                "capacity": self.capacity,
                "dim": self.dim,
                "rows": 0,
                "next_image": 0,
                "complete": False,
                "indexed": True,
            }
            self.labels_path.unlink(missing_ok=True)
            self.index_path.unlink(missing_ok=True)
            replace_text(self.meta_path, json.dumps(meta))
        self.meta = meta
        with open(self.path, "rb") as f:
            major, _ = np.lib.format.read_magic(f)
            if major == 1:
                np.lib.format.read_array_header_1_0(f)
            else:
                np.lib.format.read_array_header_2_0(f)
            self.offset = f.tell()
        self._fd = os.open(self.path, os.O_RDWR)
        self._labels_fd = os.open(self.labels_path, os.O_RDWR | os.O_CREAT, 0o644)
        self._index_fd = os.open(self.index_path, os.O_RDWR | os.O_CREAT, 0o644)

    def _read_meta(self):
        try:
            meta = json.loads(self.meta_path.read_text())
        except (OSError, ValueError):
            return None
        if (
            meta.get("key") != self.key
            or meta.get("capacity") != self.capacity
            or meta.get("dim") != self.dim
            # Written before rows named their images: made again.
            or not meta.get("indexed")
        ):
            return None
        return meta

    @property
    def rows(self):
        """Rows written (and their labels)."""
        return self.meta["rows"]

    @property
    def next_image(self):
        """The image a resumed pass starts from."""
        return self.meta["next_image"]

    @property
    def complete(self):
        return self.meta["complete"]

    @property
    def labels(self):
        """int32 label of each row written."""
        data = os.pread(self._labels_fd, self.rows * 4, 0)
        return np.frombuffer(data, np.int32).copy()

    @property
    def indices(self):
        """int64 index in the split of the image of each row written."""
        data = os.pread(self._index_fd, self.rows * 8, 0)
        return np.frombuffer(data, np.int64).copy()

    @property
    def shape(self):
        return (self.rows, self.dim)

    def append(self, features, labels, next_image, index=None):
        """Writes a chunk after the rows already there, then records it: a
        kill before the record leaves the chunk to be written again. `index`
        is the image of each row (default: the images just before
        `next_image`, none skipped)."""
        features = np.ascontiguousarray(features, np.float32)
        if index is None:
            index = np.arange(int(next_image) - len(features), int(next_image))
        start = self.rows
        os.pwrite(self._fd, features.tobytes(), self.offset + start * self.dim * 4)
        os.pwrite(self._labels_fd, np.asarray(labels, np.int32).tobytes(), start * 4)
        os.pwrite(self._index_fd, np.asarray(index, np.int64).tobytes(), start * 8)
        self.meta["rows"] = start + len(features)
        self.meta["next_image"] = int(next_image)
        replace_text(self.meta_path, json.dumps(self.meta))

    def finish(self):
        self.meta["complete"] = True
        replace_text(self.meta_path, json.dumps(self.meta))

    def rows_at(self, index):
        """Rows `index` (a vector of row numbers), in that order."""
        out = np.empty((len(index), self.dim), np.float32)
        size = self.dim * 4
        for j, i in enumerate(np.asarray(index)):
            out[j] = np.frombuffer(
                os.pread(self._fd, size, self.offset + int(i) * size), np.float32
            )
        return out

    def array(self):
        """All rows written, read into memory."""
        return self.rows_at(np.arange(self.rows))

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            os.close(self._labels_fd)
            os.close(self._index_fd)
            self._fd = None

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
