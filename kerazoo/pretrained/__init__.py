"""Pretrained weights: safe readers and converters.

`load_checkpoint(path)` reads PyTorch checkpoints into NumPy arrays without torch
and without running code from the file.
"""

from kerazoo.pretrained.checkpoint import CheckpointFormatError
from kerazoo.pretrained.checkpoint import UnsafeCheckpointError
from kerazoo.pretrained.checkpoint import load_checkpoint

__all__ = ["CheckpointFormatError", "UnsafeCheckpointError", "load_checkpoint"]
