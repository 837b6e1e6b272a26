"""Datasets named by URI (`digits`, `tfds:NAME`, `folder:PATH`) and the
`tf.data` pipelines that feed them to a model."""

from kerazoo.data.digits import load_digits_splits
from kerazoo.data.sources import ImageData
from kerazoo.data.sources import load_data
from kerazoo.data.sources import parse_uri

__all__ = ["ImageData", "load_data", "load_digits_splits", "parse_uri"]
