"""Files written whole or not at all."""

import os
import pathlib
import tempfile


def replace_text(path, text):
    """Writes `text` to `path` through a temporary file in the same folder,
    renamed over `path`: a reader, or a run resumed after a kill, finds the
    old contents or the new, never a partial file."""
    path = pathlib.Path(path)
    handle, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".partial", dir=path.parent
    )
    try:
        with os.fdopen(handle, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
