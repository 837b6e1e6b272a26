"""Datasets kerazoo can train on without a download."""

from kerazoo.data.digits import load_digits_splits

__all__ = ["load_digits_splits"]
