"""A cache of decoded, resized images as uint8, in memory or in a file.

`ImageStore` holds one split at one image size: image `i` is a fixed-size record
at offset `i * h * w * 3`, so it is filled in whatever order a shuffled epoch
reads the images and read back by index. Beside the pixels, one status byte an
image (`split.OK`, or why the file was skipped, 0 while unread): a file found
broken is not read again, and its name reaches the run's report.

On disk the pixels are read and written with `os.pread` / `os.pwrite`, never
memory-mapped, so they stay in the page cache and out of the process's resident
memory: a run's peak memory does not grow with the dataset. The files are named
by a content key (the split's files with their sizes and times, the image size):
a second run with the same data reuses them, any change makes new ones. A cache
being filled by a running process is refused to a second process; one left by a
killed process is taken over and goes on where it stopped (each image's status
is written after its pixels, so no status claims pixels that are not there).

`Dataset.cache(filename)` was not used: it writes its files only after a whole
pass, cannot be read in another order, and leaves a lock file when killed.
"""

import dataclasses
import json
import os
import pathlib
import socket
import threading

import numpy as np

import kerazoo.data.split as split_lib
from kerazoo._files import replace_text

MODES = ("auto", "memory", "disk", "none")
# `auto` keeps the cache in memory while it needs at most this share of the
# memory available when the run starts.
MEMORY_SHARE = 0.25
_STATUS_FLUSH = 4096  # images between two writes of the status file


class CacheInUseError(RuntimeError):
    """Another live process is filling the same disk cache."""


def available_memory():
    """Bytes of memory available to new allocations (Linux's MemAvailable),
    or None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclasses.dataclass
class CachePlan:
    """Where a run caches its decoded images, and why.

    Attributes:
        mode: `memory`, `disk` or `none`.
        directory: Folder of the disk cache (None otherwise).
        reason: One line for the log and the report.
        bytes: Size of the decoded images of all splits.
    """

    mode: str
    directory: pathlib.Path | None
    reason: str
    bytes: int

    def as_dict(self):
        return {
            "mode": self.mode,
            "directory": str(self.directory) if self.directory else None,
            "reason": self.reason,
            "bytes": self.bytes,
        }


def _size(n):
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def plan_cache(mode, image_size, sizes, directory, memory=None, streamed=False):
    """Decides where decoded images go (`data.cache` of a recipe).

    Args:
        mode: One of `MODES`.
        image_size: `(height, width)` of the cached images.
        sizes: Images per split.
        directory: Folder for a disk cache.
        memory: Bytes available (default: `available_memory()`).
        streamed: The splits are `tfds:` streams, which are read from their
            record files every epoch and not cached (the plan says so).

    Returns:
        A `CachePlan`.
    """
    if mode not in MODES:
        raise ValueError(f"data.cache: {mode!r}; allowed: {', '.join(MODES)}")
    height, width = image_size
    count = sum(sizes.values())
    total = count * height * width * 3
    what = f"{count:,} images x {height}x{width}x3 uint8 = {_size(total)}"
    directory = pathlib.Path(directory) if directory is not None else None
    if streamed:
        reason = (
            f"none: tfds splits are read from their record files every epoch "
            f"({what}; data.cache: {mode} applies to file and array sources)"
        )
        return CachePlan("none", None, reason, total)
    if mode == "none":
        return CachePlan("none", None, f"no cache (data.cache: none; {what})", total)
    if mode == "memory":
        return CachePlan(
            "memory", None, f"in memory (data.cache: memory; {what})", total
        )
    if mode == "disk":
        return CachePlan("disk", directory, f"on disk in {directory} ({what})", total)
    memory = available_memory() if memory is None else memory
    if memory is None:
        return CachePlan(
            "disk",
            directory,
            f"on disk in {directory} ({what}; free memory unknown)",
            total,
        )
    limit = MEMORY_SHARE * memory
    if total <= limit:
        reason = (
            f"in memory ({what}, within {MEMORY_SHARE:.0%} of the "
            f"{_size(memory)} available)"
        )
        return CachePlan("memory", None, reason, total)
    reason = (
        f"on disk in {directory} ({what}, more than {MEMORY_SHARE:.0%} of the "
        f"{_size(memory)} available)"
    )
    return CachePlan("disk", directory, reason, total)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ImageStore:
    """Decoded images of one split, by index (see the module docstring).

    Args:
        size: Number of images.
        shape: `(height, width, 3)`.
        path: File prefix of a disk cache (`PATH.images`, `PATH.status`,
            `PATH.json`); None keeps the pixels in memory.
        pixels: False keeps only the status bytes (no cache: a broken file is
            still named once).
        key: Content key written beside a disk cache and checked on reuse.
    """

    def __init__(self, size, shape, path=None, pixels=True, key=None):
        self.size = int(size)
        self.shape = tuple(int(s) for s in shape)
        self.record = int(np.prod(self.shape))
        self.path = pathlib.Path(path) if path is not None else None
        self.pixels = pixels
        self._lock = threading.Lock()
        self._since_flush = 0
        self._fd = None
        self._memory = None
        self._attempts = np.zeros(self.size, np.uint8)
        if self.path is None:
            self.status = np.zeros(self.size, np.uint8)
            if pixels:
                # np.zeros maps pages on first write: memory grows as images come.
                self._memory = np.zeros((self.size, *self.shape), np.uint8)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._claim()
        meta = {"size": self.size, "shape": list(self.shape), "key": key}
        meta_path = self._file("json")
        status_path = self._file("status")
        reuse = False
        if meta_path.exists():
            try:
                reuse = json.loads(meta_path.read_text()) == meta
            except ValueError:
                reuse = False
        if reuse and status_path.exists():
            status = np.fromfile(status_path, np.uint8)
            reuse = len(status) == self.size
        if reuse:
            # Written by an earlier version, which kept the mark in the status.
            status[status == split_lib.FAILED] = 0
        self.status = status if reuse else np.zeros(self.size, np.uint8)
        if not reuse:
            status_path.unlink(missing_ok=True)
            self._file("images").unlink(missing_ok=True)
            replace_text(meta_path, json.dumps(meta))
        self._fd = os.open(self._file("images"), os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self._fd, self.size * self.record)

    def _file(self, suffix):
        return self.path.with_name(f"{self.path.name}.{suffix}")

    def _claim(self):
        """Takes the cache for this process, or refuses it if a live process
        on this host holds it; a holder that died leaves it free."""
        owner = self._file("owner")
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        if owner.exists():
            try:
                held = json.loads(owner.read_text())
            except ValueError:
                held = {}
            if (
                held.get("host") == me["host"]
                and held.get("pid") != me["pid"]
                and isinstance(held.get("pid"), int)
                and _alive(held["pid"])
            ):
                raise CacheInUseError(
                    f"the image cache {self.path} is being filled by process "
                    f"{held['pid']}; wait for it, or give this run its own "
                    "data.cache_dir"
                )
        replace_text(owner, json.dumps(me))

    @property
    def filled(self):
        """Images read so far (decoded or found broken)."""
        return int(np.count_nonzero(self.status))

    @property
    def complete(self):
        return self.filled == self.size

    def get(self, index):
        """`(pixels, status)` of image `index`; status 0 when not cached."""
        index = int(index)
        status = self.status[index]
        if status != split_lib.OK or not self.pixels:
            # Without pixels a good image is read again, a broken one is not.
            status = 0 if status == split_lib.OK else status
            return np.zeros(self.shape, np.uint8), np.int32(status)
        if self._memory is not None:
            return self._memory[index], np.int32(status)
        data = os.pread(self._fd, self.record, index * self.record)
        return np.frombuffer(data, np.uint8).reshape(self.shape), np.int32(status)

    def get_many(self, index):
        """`(pixels, status)` of the images `index` (a vector), as `get` gives
        them one by one: one call for a batch of look-ups."""
        index = np.asarray(index, np.int64)
        status = self.status[index].astype(np.int32)
        if not self.pixels:
            status[status == split_lib.OK] = 0
            return np.zeros((len(index), *self.shape), np.uint8), status
        if self._memory is not None:
            return self._memory[index], status
        pixels = np.zeros((len(index), *self.shape), np.uint8)
        for j in np.flatnonzero(status == split_lib.OK):
            data = os.pread(self._fd, self.record, int(index[j]) * self.record)
            pixels[j] = np.frombuffer(data, np.uint8).reshape(self.shape)
        return pixels, status

    def attempt(self, index):
        """Notes that image `index` is being decoded: if the decoder fails on
        it, the note stays (`put` clears it) and names it. Kept apart from the
        status, which other passes over the split read meanwhile: a pass given
        up halfway (Keras starts an iterator it may drop) leaves notes on the
        images it was decoding, which the next pass reads again."""
        self._attempts[int(index)] = 1
        return np.int32(0)

    def put(self, index, pixels, status):
        """Stores image `index` (its pixels when `status` is `OK`)."""
        index, status = int(index), int(status)
        if status == split_lib.OK and self.pixels:
            pixels = np.ascontiguousarray(pixels, np.uint8)
            if self._memory is not None:
                self._memory[index] = pixels
            else:
                os.pwrite(self._fd, pixels.tobytes(), index * self.record)
        with self._lock:
            self.status[index] = status
            self._attempts[index] = 0
            self._since_flush += 1
            if self._fd is not None and self._since_flush >= _STATUS_FLUSH:
                self._flush()
        return np.int32(status)

    def _flush(self):
        self._since_flush = 0
        tmp = self._file("status.partial")
        self.status.tofile(tmp)
        os.replace(tmp, self._file("status"))

    def flush(self):
        """Writes the status table of a disk cache (done every few thousand
        images and at `close`)."""
        if self._fd is not None:
            with self._lock:
                self._flush()

    def close(self):
        if self._fd is not None:
            self.flush()
            os.close(self._fd)
            self._fd = None
            self._file("owner").unlink(missing_ok=True)

    def skipped(self, names):
        """`[(name, reason)]` of the images found broken; `names(i)` names
        image i."""
        status = self.status.copy()
        # Attempted, never stored: the decoder failed on it (`ignore_errors`
        # dropped it).
        status[(self._attempts == 1) & (status == 0)] = split_lib.FAILED
        bad = np.flatnonzero(status > split_lib.OK)
        return [(names(int(i)), split_lib.STATUS[int(status[i])]) for i in bad]

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass
