"""Exports for serving: SavedModels in TensorFlow Serving's layout
(`saved_models/NAME/VERSION/`), preprocessing in the graph, verified against the
Keras model in a fresh process, and every served format scored on the test
split (the model card's accuracy certificate)."""

from kerazoo.export.certificate import AccuracyDropError
from kerazoo.export.errors import ExportError
from kerazoo.export.folding import FoldingReport
from kerazoo.export.folding import fold_batch_norms
from kerazoo.export.folding import folding_pairs
from kerazoo.export.saved_model import decode_images
from kerazoo.export.saved_model import export_saved_model
from kerazoo.export.saved_model import next_version
from kerazoo.export.saved_model import verify_export
from kerazoo.export.sources import export_source

__all__ = [
    "AccuracyDropError",
    "ExportError",
    "FoldingReport",
    "decode_images",
    "export_saved_model",
    "export_source",
    "fold_batch_norms",
    "folding_pairs",
    "next_version",
    "verify_export",
]
