"""Image folders the data tests write: tiny JPEGs and PNGs, a few broken files."""

import io

import numpy as np


def encoded(pixels, fmt):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def write_folder(root, counts, seed=0):
    """`root/CLASS/i.jpg|png` for each class and count; returns the paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for name, count in counts.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 255, (12 + i % 3, 10, 3), dtype=np.uint8)
            fmt, suffix = ("PNG", "png") if i % 2 else ("JPEG", "jpg")
            path = root / name / f"{i}.{suffix}"
            path.write_bytes(encoded(pixels, fmt))
            paths.append(path)
    return paths


def write_broken(folder):
    """The four kinds of file a folder of photos holds besides photos: not an
    image, empty, a JPEG cut short, and a PNG named .jpg (which is readable).
    Returns `{name: reason or None}`."""
    pixels = np.random.default_rng(1).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    jpeg = encoded(pixels, "JPEG")
    (folder / "notes.jpg").write_bytes(b"<html>404 not found</html>")
    (folder / "empty.png").write_bytes(b"")
    (folder / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "really_png.jpg").write_bytes(encoded(pixels, "PNG"))
    return {
        "notes.jpg": "not an image",
        "empty.png": "empty file",
        "cut.jpg": "truncated",
        "really_png.jpg": None,
    }
