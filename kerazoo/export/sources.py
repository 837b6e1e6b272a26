"""What `kerazoo export SOURCE` accepts: a `.keras` file, a fine-tuning run
directory, or a registry name with pretrained weights."""

import json
import pathlib

from kerazoo.api import load_model
from kerazoo.export.saved_model import ExportError
from kerazoo.export.saved_model import export_saved_model


def load_source(source, weights="imagenet"):
    """Returns `(model, class_names, card, crop_fraction)` for a SOURCE."""
    path = pathlib.Path(source)
    if path.is_dir():
        model_file, report_file = path / "model.keras", path / "report.json"
        if not (model_file.exists() and report_file.exists()):
            raise ExportError(
                f"{path} is not a finished fine-tuning run (no model.keras and "
                "report.json)"
            )
        report = json.loads(report_file.read_text())
        model = load_model(model_file)
        card = {
            "source": str(path.resolve()),
            "weights": report["recipe"]["model"].get("weights"),
            "recipe": report["recipe"],
            "metrics": {
                "test_accuracy": report["test_accuracy"],
                "test_images": report["test_images"],
                "stage1_test_accuracy": report["stage1"].get("test_accuracy"),
            },
            "data": report["data"]["uri"],
        }
        return model, report["data"]["classes"], card, 1.0
    if path.suffix == ".keras":
        if not path.exists():
            raise ExportError(f"no model file at {path}")
        model = load_model(path)
        return model, None, {"source": str(path.resolve())}, 1.0
    from kerazoo.models import create_model
    from kerazoo.models import list_models

    if source not in list_models():
        from kerazoo._checks import unknown_name_error

        raise unknown_name_error("export source", source, list_models())
    model = create_model(source, weights=weights)
    names = None
    if weights == "imagenet" and model.outputs[0].shape[-1] == 1000:
        from kerazoo.pretrained.predict import imagenet_class_names

        names = imagenet_class_names()
    return model, names, {"source": source, "weights": weights}, 0.875


def export_source(source, name, version=None, out="saved_models", **kwargs):
    """Loads SOURCE (`load_source`) and exports it to `out/name/version`."""
    weights = kwargs.pop("weights", "imagenet")
    crop = kwargs.pop("crop_fraction", None)
    model, class_names, card, default_crop = load_source(source, weights)
    return export_saved_model(
        model,
        pathlib.Path(out) / name,
        version,
        class_names=class_names,
        card=card,
        crop_fraction=default_crop if crop is None else crop,
        **kwargs,
    )


def model_of_export(path):
    """The Keras model an export came from, when its source is still there."""
    card = json.loads((pathlib.Path(path) / "assets" / "model_card.json").read_text())
    source = card.get("source")
    if not source:
        return None
    if pathlib.Path(source).exists() or "/" not in source:
        try:
            return load_source(source, card.get("weights") or "imagenet")[0]
        except (ExportError, ValueError, OSError):
            return None
    return None
