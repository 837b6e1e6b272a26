"""Listing image files without opening them.

A folder of a million photos is listed with `os.scandir` (the directory entries
carry the file type, so no file is opened or decoded) and filtered by extension.
Each file's size and modification time are kept: they are part of the content
key that decides whether a cache of decoded images is still valid.
"""

import dataclasses
import os

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True, slots=True)
class FileEntry:
    path: str
    size: int
    mtime_ns: int


def is_image_name(name):
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def walk_images(root):
    """Image files under `root` (recursively, symlinked folders not followed),
    sorted by path.

    Returns:
        A list of `FileEntry`.
    """
    found = []
    stack = [os.fspath(root)]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif is_image_name(entry.name) and entry.is_file():
                    stat = entry.stat()
                    found.append(FileEntry(entry.path, stat.st_size, stat.st_mtime_ns))
    found.sort(key=lambda e: e.path)
    return found


def subfolders(root):
    """Names of the folders directly in `root`, sorted (hidden ones left out)."""
    with os.scandir(root) as entries:
        return sorted(
            e.name for e in entries if e.is_dir() and not e.name.startswith(".")
        )


def stat_files(paths):
    """`FileEntry` for each path, in order; a missing file raises
    `FileNotFoundError` naming it."""
    out = []
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise FileNotFoundError(f"no file at {path}") from None
        out.append(FileEntry(os.fspath(path), stat.st_size, stat.st_mtime_ns))
    return out
