"""Pipelines at scale, on folders the tests write: cache modes, broken files,
layouts, sharding, the shuffle buffer and resumable feature files."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from image_files import write_broken
from image_files import write_folder

from kerazoo.data import load_data
from kerazoo.data.cache import ImageStore
from kerazoo.data.cache import plan_cache
from kerazoo.data.features import FeatureFile
from kerazoo.data.pipeline import Pipelines
from kerazoo.data.split import OK


def _batches(dataset):
    return [(x.numpy(), y.numpy()) for x, y in dataset]


def _epochs(pipelines, n=2, **kwargs):
    dataset = pipelines.dataset("train", 8, training=True, seed=5, **kwargs)
    return [_batches(dataset) for _ in range(n)]


def test_every_cache_mode_gives_the_memory_batches_in_the_same_order(tmp_path):
    write_folder(tmp_path / "data", {"a": 20, "b": 17, "c": 9})
    data = load_data(f"folder:{tmp_path / 'data'}", seed=0)
    reference = _epochs(Pipelines(data, (16, 12), cache="memory"))
    assert not np.array_equal(reference[0][0][1], reference[1][0][1])  # reshuffled
    for mode in ("disk", "none"):
        pipelines = Pipelines(data, (16, 12), cache=mode, cache_dir=tmp_path / "c")
        got = _epochs(pipelines)
        for epoch, want in zip(got, reference, strict=True):
            assert len(epoch) == len(want)
            for (x, y), (wx, wy) in zip(epoch, want, strict=True):
                np.testing.assert_array_equal(y, wy)
                np.testing.assert_array_equal(x, wx)
        pipelines.close()


def test_disk_cache_files_are_where_expected_and_reused(tmp_path):
    write_folder(tmp_path / "data", {"a": 6, "b": 6})
    data = load_data(f"folder:{tmp_path / 'data'}?validation=0.2&test=0.2")
    cache = tmp_path / "cache"
    first = Pipelines(data, (8, 8), cache="disk", cache_dir=cache)
    want = _batches(first.dataset("test", 4))
    first.close()
    files = sorted(p.name for p in cache.iterdir())
    assert [f.split(".")[-1] for f in files] == ["images", "json", "status"]
    assert files[0].startswith("test-")
    assert os.path.getsize(cache / files[0]) == data.sizes["test"] * 8 * 8 * 3
    status = np.fromfile(cache / files[2], np.uint8)
    assert (status == OK).all()
    # A second run reads the cache, not the files: remove them and read again.
    for split in data.splits["test"].paths:
        os.remove(split)
    again = Pipelines(data, (8, 8), cache="disk", cache_dir=cache)
    for (x, y), (wx, wy) in zip(_batches(again.dataset("test", 4)), want, strict=True):
        np.testing.assert_array_equal(x, wx)
        np.testing.assert_array_equal(y, wy)
    again.close()
    # Another image size is another cache.
    other = Pipelines(data, (9, 9), cache="disk", cache_dir=cache)
    other.store("train")
    other.close()
    assert len(list(cache.glob("train-*.images"))) == 1


def test_a_disk_cache_held_by_a_live_process_is_refused(tmp_path):
    path = tmp_path / "train-x"
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "train-x.owner").write_text(
            json.dumps({"pid": child.pid, "host": os.uname().nodename})
        )
        with pytest.raises(RuntimeError, match=f"process {child.pid}"):
            ImageStore(4, (2, 2, 3), path)
    finally:
        child.kill()
        child.wait()
    # The holder died: its cache is taken over.
    store = ImageStore(4, (2, 2, 3), path)
    store.close()


def test_broken_files_mid_stream_are_skipped_and_named(tmp_path):
    write_folder(tmp_path / "data", {"a": 8, "b": 8})
    kinds = write_broken(tmp_path / "data" / "a")
    data = load_data(f"folder:{tmp_path / 'data'}?validation=0.1&test=0.1")
    names = {os.path.basename(p) for s in data.splits.values() for p in s.paths}
    assert set(kinds) <= names  # listed: nothing is opened before streaming
    warnings = []
    for mode in ("memory", "none"):
        pipelines = Pipelines(data, (8, 8), cache=mode, log=warnings.append)
        seen = 0
        for _ in range(2):
            for split in ("train", "validation", "test"):
                seen += sum(len(y) for _, y in _batches(pipelines.dataset(split, 5)))
        broken = {os.path.basename(p): r for p, r in pipelines.skipped()}
        assert broken == {k: v for k, v in kinds.items() if v}
        # Every other image, the PNG named .jpg included, arrived twice.
        assert seen == 2 * (sum(data.sizes.values()) - 3)
    assert len(warnings) == 6 and all("kerazoo: skipping" in w for w in warnings)


def test_a_file_the_decoder_fails_on_is_named_too(tmp_path):
    write_folder(tmp_path / "data", {"a": 4, "b": 4})
    # A JPEG's signature and end marker around bytes that are no JPEG.
    (tmp_path / "data" / "b" / "garbled.jpg").write_bytes(
        b"\xff\xd8\xff" + bytes(range(256)) * 4 + b"\xff\xd9"
    )
    data = load_data(f"folder:{tmp_path / 'data'}?validation=0.2&test=0.2")
    pipelines = Pipelines(data, (8, 8), cache="memory")
    for split in data.splits:
        _batches(pipelines.dataset(split, 4))
    assert [(os.path.basename(p), r) for p, r in pipelines.skipped()] == [
        ("garbled.jpg", "TensorFlow could not decode it")
    ]


def test_split_folders_are_taken_as_given(tmp_path):
    write_folder(tmp_path / "train", {"cat": 10, "dog": 8})
    write_folder(tmp_path / "val", {"cat": 3, "dog": 2})
    write_folder(tmp_path / "test", {"cat": 4, "dog": 4})
    data = load_data(f"folder:{tmp_path}")
    assert data.class_names == ["cat", "dog"]
    assert data.sizes == {"train": 18, "validation": 5, "test": 8}
    assert data.counts == {"train": [10, 8], "validation": [3, 2], "test": [4, 4]}
    assert all("/val/" in p for p in data.splits["validation"].paths)
    # No test/ folder: the test split is carved from train/, per class.
    (tmp_path / "test").rename(tmp_path / "elsewhere")
    data = load_data(f"folder:{tmp_path}?test=0.2")
    assert data.sizes == {"train": 14, "validation": 5, "test": 4}
    assert all("/train/" in p for p in data.splits["test"].paths)


def test_split_folders_with_different_classes_name_the_difference(tmp_path):
    write_folder(tmp_path / "train", {"cat": 3, "dog": 3, "owl": 3})
    write_folder(tmp_path / "validation", {"cat": 2, "dog": 2, "emu": 2})
    with pytest.raises(
        ValueError, match="validation/.*missing owl.*not in train/: emu"
    ):
        load_data(f"folder:{tmp_path}")


def test_csv_source_with_and_without_a_split_column(tmp_path):
    paths = write_folder(tmp_path / "img", {"cat": 6, "dog": 6})
    rows = ["path,label,split"]
    for i, path in enumerate(paths):
        split = "train" if i % 6 < 4 else ("val" if i % 6 == 4 else "test")
        rows.append(f"{path.relative_to(tmp_path)},{path.parent.name},{split}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_data(f"csv:{tmp_path / 'labels.csv'}")
    assert data.class_names == ["cat", "dog"]
    assert data.sizes == {"train": 8, "validation": 2, "test": 2}
    x, y = next(iter(Pipelines(data, (8, 8)).dataset("train", 8)))
    assert x.shape == (8, 8, 8, 3) and sorted(y.numpy()) == [0] * 4 + [1] * 4
    plain = [r.rsplit(",", 1)[0] for r in rows]
    (tmp_path / "plain.csv").write_text("\n".join(plain) + "\n")
    data = load_data(f"csv:{tmp_path / 'plain.csv'}?validation=0.5&test=0.2")
    assert data.sizes == {"train": 4, "validation": 6, "test": 2}
    (tmp_path / "bad.csv").write_text("file,class\na.jpg,cat\n")
    with pytest.raises(ValueError, match="needs columns path and label"):
        load_data(f"csv:{tmp_path / 'bad.csv'}")
    (tmp_path / "bad.csv").write_text(
        "path,label,split\na.jpg,cat,dev\nb.jpg,dog,test\n"
    )
    with pytest.raises(ValueError, match="line 2: split 'dev'"):
        load_data(f"csv:{tmp_path / 'bad.csv'}")


def test_sharding_two_ways_covers_every_file_exactly_once(tmp_path):
    write_folder(tmp_path, {"a": 11, "b": 6, "c": 4})
    data = load_data(f"folder:{tmp_path}")
    for split, source in data.splits.items():
        parts = [data.sharded(i, 2).splits[split] for i in range(2)]
        together = sorted(p for part in parts for p in part.paths)
        assert together == sorted(source.paths)
        assert abs(parts[0].size - parts[1].size) <= 1
    digits = load_data("digits")
    halves = [digits.sharded(i, 2) for i in range(2)]
    assert sum(h.sizes["train"] for h in halves) == digits.sizes["train"]
    with pytest.raises(ValueError, match="shard 2 of 2"):
        data.sharded(2, 2)


def test_a_streamed_split_shuffles_through_a_bounded_buffer():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=60):
        data = load_data("tfds:mnist")
        buffer = 5
        pipelines = Pipelines(data, (8, 8), cache="none", shuffle_buffer=buffer)
        # Tag each example with its place in the stream: with a buffer of 5 an
        # example can come out at most 5 places before it went in.
        source = data.splits["train"]
        source.stream = lambda shuffle_files=False, seed=0, s=source.stream: (
            s(False, seed).enumerate().map(lambda i, xy: (tf.fill([4, 4, 1], i), xy[1]))
        )
        order = [
            int(x[0, 0, 0])
            for x, _ in pipelines.dataset("train", 1, training=True, seed=0)
            .unbatch()
            .as_numpy_iterator()
        ]
    assert sorted(order) == list(range(len(order)))
    assert order != sorted(order)
    # Example i enters the buffer when example i - buffer leaves it.
    ahead = [i - position for position, i in enumerate(order)]
    assert 0 < max(ahead) < buffer


def test_plan_cache_says_which_and_why():
    small = plan_cache("auto", (64, 64), {"train": 1000}, "c", memory=8e9)
    assert small.mode == "memory" and "within 25%" in small.reason
    big = plan_cache("auto", (224, 224), {"train": 1_000_000}, "c", memory=8e9)
    assert big.mode == "disk" and "more than 25%" in big.reason
    assert "150.5 GB" in big.reason
    tfds = plan_cache("auto", (64, 64), {"train": 10}, "c", streamed=True)
    assert tfds.mode == "none" and "tfds splits are read" in tfds.reason
    with pytest.raises(ValueError, match="allowed: auto, memory, disk, none"):
        plan_cache("ram", (8, 8), {"train": 1}, "c")


def test_feature_file_resumes_after_a_kill_and_gives_the_same_rows(tmp_path):
    """A pass killed (SIGKILL) after some chunks goes on from its last
    finished chunk and ends with the rows of an uninterrupted pass."""
    script = textwrap.dedent(
        f"""
        import os, signal, numpy as np
        from kerazoo.data.features import FeatureFile
        file = FeatureFile({str(tmp_path / "f.npy")!r}, 100, 3, "k")
        for start in range(file.next_image, 100, 10):
            if start == 40 and os.environ.get("KILL"):
                os.kill(os.getpid(), signal.SIGKILL)
            rows = np.arange(start * 3, (start + 10) * 3, dtype="float32")
            file.append(rows.reshape(10, 3), np.arange(start, start + 10), start + 10)
        file.finish()
        """
    )
    env = {**os.environ, "KILL": "1"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, check=False)
    assert killed.returncode == -signal.SIGKILL
    half = FeatureFile(tmp_path / "f.npy", 100, 3, "k")
    assert half.next_image == 40 and not half.complete
    half.close()
    subprocess.run([sys.executable, "-c", script], check=True)
    done = FeatureFile(tmp_path / "f.npy", 100, 3, "k")
    assert done.complete
    np.testing.assert_array_equal(done.array().ravel(), np.arange(300))
    np.testing.assert_array_equal(done.labels, np.arange(100))
    assert np.load(tmp_path / "f.npy").shape == (100, 3)  # a plain .npy file
    assert FeatureFile(tmp_path / "f.npy", 100, 3, "other").rows == 0


def test_two_passes_at_once_over_a_cold_cache_lose_no_image(tmp_path, monkeypatch):
    """Two passes over one split at once (Keras may start an iterator before
    the last is done), each seeing the other's images half decoded, lose no
    image and name none broken."""
    import time

    put = ImageStore.put

    def slow_put(self, index, pixels, status):
        time.sleep(0.01)  # keeps each image "being decoded" a while
        return put(self, index, pixels, status)

    monkeypatch.setattr(ImageStore, "put", slow_put)
    write_folder(tmp_path, {"a": 12, "b": 12})
    data = load_data(f"folder:{tmp_path}?validation=0.25&test=0.25")
    for mode in ("memory", "none"):
        pipelines = Pipelines(data, (8, 8), cache=mode)
        passes = [iter(pipelines.dataset("train", 1)) for _ in range(2)]
        got = [0, 0]
        for _ in range(data.sizes["train"]):
            for k, batches in enumerate(passes):
                got[k] += len(next(batches, ((), ()))[1])
        assert got == [data.sizes["train"]] * 2, mode
        assert pipelines.skipped() == []
