"""The weights cache: keras.applications weights downloaded once (from a file://
URL here: no test touches the network), checked, ported into kerazoo's
architecture with a conversion report, and refused when corrupt or missing."""

import dataclasses
import hashlib
import json
import shutil

import keras
import numpy as np
import pytest

from kerazoo.models import create_model
from kerazoo.weights import WeightsIntegrityError
from kerazoo.weights import WeightsUnavailableError
from kerazoo.weights import cache
from kerazoo.weights import manifest

SIZE = 64


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def source(tmp_path_factory, monkeypatch):
    """A keras.applications EfficientNetB0 (random weights) published as a
    file:// URL under a manifest entry tagged "test", and an empty cache."""
    folder = tmp_path_factory.mktemp("published")
    keras.utils.set_random_seed(1)
    network = keras.applications.EfficientNetB0(
        weights=None, input_shape=(SIZE, SIZE, 3)
    )
    path = folder / "efficientnetb0.weights.h5"
    network.save_weights(path)
    real = manifest.find_weights("efficientnet_b0", "imagenet")
    entry = dataclasses.replace(
        real, tag="test", url=path.as_uri(), md5=_md5(path), input_size=SIZE
    )
    monkeypatch.setattr(manifest, "MANIFEST", (*manifest.MANIFEST, entry))
    monkeypatch.setenv("KERAZOO_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.delenv("KERAZOO_OFFLINE", raising=False)
    return network, path, entry


def test_entries_for_keras_applications_weights():
    for name in ("resnet50", "densenet121", "efficientnet_b0", "efficientnet_b7"):
        entry = manifest.find_weights(name, "imagenet")
        assert entry.url.startswith("https://storage.googleapis.com/")
        assert len(entry.md5) == 32 and entry.converter == "keras_applications"
    assert dict(manifest.find_weights("resnet50", "imagenet").options) == {
        "stride_on": "1x1",
        "norm_epsilon": 1.001e-5,
    }


def test_download_port_reuse_and_refuse_a_corrupt_copy(source):
    network, path, entry = source
    model = create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))
    x = cache.sample_images(SIZE, count=4, seed=3)
    np.testing.assert_allclose(
        model.predict_on_batch(x), network.predict_on_batch(x), atol=1e-4
    )
    home = cache.kerazoo_home()
    record = json.loads((home / "weights" / "efficientnet_b0-test.json").read_text())
    assert record["source_url"] == entry.url and record["source_md5"] == entry.md5
    assert record["preprocessing"]["mode"] == "custom"
    report = record["conversion_report"]
    assert report["max_abs_difference"] < 1e-4 and report["images"] == 8
    assert report["top1_agreement"] == 8
    assert not list(home.rglob("*.part"))
    # Later uses read the cache: the published file can go away.
    path.unlink()
    again = create_model(
        "efficientnet_b0", weights="test", num_classes=3, input_shape=(SIZE, SIZE, 3)
    )
    body = again.get_layer("body").get_layer("stem").weights[0]
    np.testing.assert_array_equal(
        body.numpy(), model.get_layer("body").get_layer("stem").weights[0].numpy()
    )
    # A corrupt ported file is refused, removed, and the error says so.
    ported = home / "weights" / "efficientnet_b0-test.npz"
    data = bytearray(ported.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ported.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="corrupt and was removed"):
        create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))
    assert not ported.exists()


def test_cli_fetches_ahead_and_lists_the_cache(source, capsys):
    from kerazoo.cli import main

    assert main(["weights", "--fetch", "resnet_50"]) == 2
    assert "Did you mean 'resnet50'" in capsys.readouterr().err
    assert main(["weights", "--fetch", "efficientnet_b0", "--tag", "test"]) == 0
    out = capsys.readouterr().out
    assert "porting efficientnetb0.weights.h5" in out
    assert f"cache: {cache.kerazoo_home()}" in out
    rows = [x for x in out.splitlines() if x.startswith("efficientnet_b0 ")]
    assert any(" test " in x and "cached (ported; max |diff|" in x for x in rows)
    assert "efficientnet_lite0" in out and "installed" in out


def test_truncated_download_is_refused_and_not_kept(source):
    _, path, _ = source
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsIntegrityError, match="md5"):
        create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))
    home = cache.kerazoo_home()
    assert not [p for p in home.rglob("*") if p.is_file()]


def test_offline_names_the_url_and_place_then_uses_a_file_put_there(
    source, monkeypatch
):
    _, path, entry = source
    monkeypatch.setenv("KERAZOO_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as error:
        create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))
    message = str(error.value)
    assert entry.url in message
    place = cache.kerazoo_home() / "downloads" / "efficientnetb0.weights.h5"
    assert str(place) in message
    # Put there by hand, the file is checked and ported, still offline.
    place.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, place)
    create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))


def test_failed_download_names_the_url(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAZOO_OFFLINE", raising=False)
    url = (tmp_path / "nowhere.h5").as_uri()
    with pytest.raises(WeightsUnavailableError, match="the download failed"):
        cache.download(url, tmp_path / "x.h5", log=lambda line: None)
    assert not list(tmp_path.iterdir())


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_sha256_download_is_checked_and_a_mismatch_overwrites_nothing(tmp_path):
    published = tmp_path / "convnext_tiny.h5"
    published.write_bytes(b"published weights" * 1000)
    place = tmp_path / "home" / "downloads" / "convnext_tiny.h5"
    quiet = lambda line: None  # noqa: E731
    url, sha256 = published.as_uri(), _sha256(published)
    assert cache.download(url, place, sha256=sha256, log=quiet) == place
    assert place.read_bytes() == published.read_bytes()
    # Another file at the URL: refused, naming the URL and both sha256s; the
    # file already in place is kept as it was, and nothing else is left.
    published.write_bytes(b"another file")
    with pytest.raises(WeightsIntegrityError) as error:
        cache.download(url, place, sha256=sha256, log=quiet)
    message = str(error.value)
    assert url in message and f"sha256 {_sha256(published)}" in message
    assert f"expected {sha256}" in message and "nothing was kept" in message
    assert place.read_bytes() == b"published weights" * 1000
    assert [p.name for p in place.parent.iterdir()] == [place.name]


def test_an_entry_is_checked_by_its_sha256_else_its_md5_else_refused(
    tmp_path, monkeypatch
):
    convnext = manifest.find_weights("convnext_tiny", "imagenet")
    assert cache.source_checksum(convnext) == ("sha256", convnext.sha256)
    resnet = manifest.find_weights("resnet50", "imagenet")
    assert cache.source_checksum(resnet) == ("md5", resnet.md5)
    monkeypatch.setenv("KERAZOO_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KERAZOO_OFFLINE", raising=False)
    published = tmp_path / "convnext_tiny.h5"
    published.write_bytes(b"weights")
    unchecked = dataclasses.replace(
        convnext, tag="unchecked", url=published.as_uri(), sha256="", md5=""
    )
    with pytest.raises(WeightsIntegrityError) as error:
        cache.cached_weights(unchecked, build=create_model, log=lambda line: None)
    message = str(error.value)
    assert "'unchecked' of 'convnext_tiny'" in message and unchecked.url in message
    assert "neither a sha256 nor an md5" in message
    assert not (tmp_path / "home").exists()
    # Offline, a sha256 entry names the URL and where to put the file.
    monkeypatch.setenv("KERAZOO_OFFLINE", "1")
    checked = dataclasses.replace(unchecked, sha256=_sha256(published))
    with pytest.raises(WeightsUnavailableError) as error:
        cache.cached_weights(checked, build=create_model, log=lambda line: None)
    place = cache.kerazoo_home() / "downloads" / "convnext_tiny.h5"
    assert checked.url in str(error.value) and str(place) in str(error.value)


def test_weights_options_conflict_is_refused():
    with pytest.raises(ValueError, match="need stride_on='1x1'"):
        create_model("resnet50", weights="imagenet", stride_on="3x3")
    with pytest.raises(ValueError, match="expect preprocessing 'caffe'"):
        create_model("resnet50", weights="imagenet", preprocessing="torch")


def test_porting_on_first_use_keeps_the_callers_mixed_precision(source):
    # Keras's clear_session() resets the dtype policy to float32: porting
    # inside a mixed-precision run must neither port in bfloat16 nor leave the
    # rest of the run in float32.
    keras.config.set_dtype_policy("mixed_bfloat16")
    model = create_model("efficientnet_b0", weights="test", input_shape=(SIZE, SIZE, 3))
    assert keras.config.dtype_policy().name == "mixed_bfloat16"
    assert model.get_layer("body").get_layer("stem").compute_dtype == "bfloat16"
    later = create_model("efficientnet_b0", input_shape=(SIZE, SIZE, 3))
    assert later.get_layer("body").get_layer("stem").compute_dtype == "bfloat16"
    record = json.loads(
        (cache.kerazoo_home() / "weights" / "efficientnet_b0-test.json").read_text()
    )
    assert record["conversion_report"]["max_abs_difference"] < 1e-4
