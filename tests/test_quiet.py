"""The `kerazoo` command leaves out TensorFlow's C++ start-up lines below
TF_CPP_MIN_LOG_LEVEL, and keeps everything else it writes to stderr."""

import os

import pytest

from kerazoo import _quiet

ABSL_INFO = (
    b"I0000 00:00:1796288334.023480   29318 cudart_stub.cc:31] Could not find "
    b"cuda drivers on your machine, GPU will not be used.\n"
)
ABSL_ERROR = (
    b"E0000 00:00:1796288896.999633    6797 cuda_platform.cc:52] failed call to "
    b"cuInit: INTERNAL: CUDA error\n"
)
PRE_INIT = (
    b"WARNING: All log messages before absl::InitializeLog() is called are "
    b"written to STDERR\n"
)
TF_INFO = (
    b"2026-01-01 12:00:00.000000: I tensorflow/core/util/port.cc:153] oneDNN "
    b"custom operations are on.\n"
)
OTHER = b"UserWarning: something a Python library warns about\n"


@pytest.mark.parametrize(
    "level, kept",
    [
        (0, [ABSL_INFO, ABSL_ERROR, PRE_INIT, TF_INFO, OTHER]),
        (1, [ABSL_ERROR, PRE_INIT, OTHER]),
        (2, [ABSL_ERROR, OTHER]),
        (3, [OTHER]),
    ],
)
def test_lines_below_the_level_are_left_out(level, kept):
    lines = [ABSL_INFO, ABSL_ERROR, PRE_INIT, TF_INFO, OTHER]
    assert [line for line in lines if _quiet.kept(line, level)] == kept


def test_what_is_written_to_the_file_descriptor_comes_out_filtered(capfd):
    with _quiet.filtered_stderr(level=2):
        os.write(2, PRE_INIT + ABSL_INFO + OTHER)
        assert capfd.readouterr().err == ""  # held until the end
    assert capfd.readouterr().err == OTHER.decode()


def test_an_error_inside_still_writes_what_was_held(capfd):
    with pytest.raises(RuntimeError), _quiet.filtered_stderr(level=2):
        os.write(2, ABSL_INFO + b"Traceback: the import failed\n")
        raise RuntimeError
    assert capfd.readouterr().err == "Traceback: the import failed\n"


def test_the_level_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    assert _quiet.min_log_level() == 3
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "loud")
    assert _quiet.min_log_level() == 0
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL")
    assert _quiet.min_log_level() == 0
