"""`kerazoo predict`: ImageNet names, central crop, top-5 on real photos."""

import numpy as np
import pytest
from PIL import Image
from skimage import data

from kerazoo.cli import main
from kerazoo.weights.predict import imagenet_class_names
from kerazoo.weights.predict import load_image


def test_imagenet_class_names_are_in_label_order():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert names[0].startswith("tench") and names[967] == "espresso"


def test_load_image_crops_the_centre(tmp_path):
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, 50:150] = 255  # the central square is white, the sides black
    Image.fromarray(image).save(tmp_path / "x.png")
    out = load_image(tmp_path / "x.png", (20, 20), crop_fraction=1.0)
    assert out.shape == (20, 20, 3) and out.min() > 250
    with pytest.raises(ValueError, match="not a JPEG"):
        (tmp_path / "bad.png").write_bytes(b"nope")
        load_image(tmp_path / "bad.png", (20, 20))


def test_predict_cli_on_photos(tmp_path, capsys):
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.png")
    Image.fromarray(data.chelsea()).save(tmp_path / "chelsea.png")
    paths = [str(tmp_path / "coffee.png"), str(tmp_path / "chelsea.png")]
    assert main(["predict", *paths]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("coffee.png") and "espresso" in lines[1]
    assert lines[6].endswith("chelsea.png") and "cat" in lines[7]
    assert main(["predict", str(tmp_path / "missing.png")]) == 1
    assert "no image at" in capsys.readouterr().err
