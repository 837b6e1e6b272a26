"""TensorFlow's C++ start-up lines, kept off the `kerazoo` command's terminal.

`TF_CPP_MIN_LOG_LEVEL` silences TensorFlow's own C++ logging, but not what its
libraries log through absl before absl's logging is set up: absl writes all of
that to stderr, after a "WARNING: All log messages before absl::InitializeLog()
is called are written to STDERR" (abseil/abseil-cpp#1718). TensorFlow 2.21 does
it while it is imported, once per library that links absl (CUDA probing:
"cudart_stub.cc:31] Could not find cuda drivers"). So the command imports Keras,
and with it its backend, with file descriptor 2 held in a temporary file, and
writes back what it held without the C++ log lines below the level
`TF_CPP_MIN_LOG_LEVEL` asks for. Anything else written meanwhile (a Python
warning, a traceback) comes out as it was.
"""

import contextlib
import os
import re
import sys

# absl's format ("I0000 00:00:1796288334.023480   29318 cudart_stub.cc:31] ...";
# before absl's logging is set up, the seconds count from 1970) and TensorFlow's
# ("2026-01-01 12:00:00.000000: I tensorflow/core/util/port.cc:153] ..."): a
# severity letter, then the source file and line.
_LOG_LINE = re.compile(
    rb"(?:(?P<absl>[IWEF])\d{4} \d\d:\d\d:\d+\.\d+ +\d+ "
    rb"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: (?P<tf>[IWEF]) )\S+:\d+\] "
)
_PRE_INIT = b"WARNING: All log messages before absl::InitializeLog() is called"
# TF_CPP_MIN_LOG_LEVEL's scale.
_SEVERITY = {b"I": 0, b"W": 1, b"E": 2, b"F": 3}


def min_log_level():
    """`TF_CPP_MIN_LOG_LEVEL` as a number: 0 (everything) when unset or not one."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def kept(line, level):
    """Whether a line (bytes) of stderr stays at log level `level`: anything
    but a C++ log line of a lower severity."""
    if line.startswith(_PRE_INIT):
        return level < _SEVERITY[b"E"]  # absl's own warning
    match = _LOG_LINE.match(line)
    return match is None or _SEVERITY[match["absl"] or match["tf"]] >= level


@contextlib.contextmanager
def filtered_stderr(level=None):
    """Within: what the process writes to file descriptor 2, from Python or
    C++, is held; at the end it is written out, less the C++ log lines below
    `level` (default: `TF_CPP_MIN_LOG_LEVEL`; at 0 nothing is held)."""
    level = min_log_level() if level is None else level
    try:
        saved = os.dup(2) if level > 0 else None
    except OSError:  # no file descriptor 2
        saved = None
    if saved is None:
        yield
        return
    # Imported here: `kerazoo --version` imports this module, and tempfile
    # costs it 20 ms.
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            text = b"".join(line for line in held if kept(line, level))
            with open(os.dup(2), "wb") as stderr:
                stderr.write(text)


def import_keras():
    """Imports Keras (and the backend it loads: TensorFlow by default) with
    TensorFlow's start-up lines filtered out (`filtered_stderr`)."""
    if "keras" in sys.modules:
        return
    with filtered_stderr():
        import keras  # noqa: F401
