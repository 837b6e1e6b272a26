"""The weights cache: downloads checked and kept in `$KERAZOO_HOME`.

A `keras_applications` manifest entry is fetched once from its URL into
`$KERAZOO_HOME/downloads/` (streamed to a temporary name, its checksum checked
against the one Keras publishes: the entry's sha256 when it has one, as for
ConvNeXt, else its md5; then renamed), ported into kerazoo's own architecture
(`from_keras_application`) and kept as `$KERAZOO_HOME/weights/MODEL-TAG.npz`:
every variable by its path, readable without pickle. Beside it,
`MODEL-TAG.json` records the source's URL, md5 and sha256, the ported file's
sha256 (checked before every use), the preprocessing and the conversion report
(outputs of the source and the port on sample images). A file that fails a
check is removed and the error says so.

`KERAZOO_HOME` defaults to `$XDG_CACHE_HOME/kerazoo` (`~/.cache/kerazoo`).
With `KERAZOO_OFFLINE=1`, or when the download fails, a missing file raises
`WeightsUnavailableError` naming the URL and where to put the file.
"""

import json
import os
import pathlib
import tempfile
import time
import urllib.error
import urllib.request

import numpy as np

from kerazoo import __version__
from kerazoo._files import replace_text
from kerazoo.weights.checkpoint import load_checkpoint
from kerazoo.weights.convert import find_converter
from kerazoo.weights.keras_applications import from_keras_application
from kerazoo.weights.manifest import WeightsIntegrityError
from kerazoo.weights.manifest import WeightsUnavailableError
from kerazoo.weights.manifest import file_digest
from kerazoo.weights.manifest import sha256_of
from kerazoo.weights.manifest import weights_file
from kerazoo.weights.reference import efficientnet_lite_logits


def kerazoo_home():
    """The cache folder: `$KERAZOO_HOME`, else `$XDG_CACHE_HOME/kerazoo`, else
    `~/.cache/kerazoo`."""
    if os.environ.get("KERAZOO_HOME"):
        return pathlib.Path(os.environ["KERAZOO_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(base) / "kerazoo"


def offline():
    return os.environ.get("KERAZOO_OFFLINE", "").lower() in ("1", "true", "yes")


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _progress(log, done, total, start):
    rate = done / max(time.perf_counter() - start, 1e-9) / 2**20
    size = f"/{total / 2**20:.1f}" if total else ""
    log(f"  {done / 2**20:.1f}{size} MiB ({rate:.1f} MiB/s)")


def download(url, destination, md5=None, log=print, *, sha256=None):
    """Fetches `url` to `destination`, all or nothing.

    The bytes go to a temporary file in the same folder, which becomes
    `destination` (an atomic rename) only when it is complete (as long as the
    server's Content-Length) and its md5 is `md5` and its sha256 `sha256`
    (those given); otherwise it is removed and `WeightsIntegrityError` is
    raised, naming the URL and the expected and actual checksums. Network
    failures raise `WeightsUnavailableError` naming the URL and `destination`.
    """
    destination = pathlib.Path(destination)
    if offline():
        raise WeightsUnavailableError(
            _missing(url, destination, "KERAZOO_OFFLINE is set")
        )
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(
        prefix=destination.name + ".", suffix=".part", dir=destination.parent
    )
    try:
        with os.fdopen(handle, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as error:
                raise WeightsUnavailableError(
                    _missing(url, destination, f"the download failed ({error})")
                ) from None
            with response:
                total = int(response.headers.get("Content-Length") or 0)
                log(f"downloading {url}")
                done, start, shown = 0, time.perf_counter(), 0.0
                while block := response.read(1 << 20):
                    out.write(block)
                    done += len(block)
                    if time.perf_counter() - shown > 2:
                        shown = time.perf_counter()
                        _progress(log, done, total, start)
                _progress(log, done, total, start)
        if total and done != total:
            raise WeightsIntegrityError(
                f"{url}: received {done:,d} of {total:,d} bytes (truncated); "
                "nothing was kept. Run again to retry."
            )
        for algorithm, expected in (("md5", md5), ("sha256", sha256)):
            if expected is None:
                continue
            digest = file_digest(partial, algorithm)
            if digest != expected:
                raise WeightsIntegrityError(
                    f"{url}: {algorithm} {digest}, expected {expected} (corrupt, "
                    "truncated, or not the published file); nothing was kept."
                )
        os.replace(partial, destination)
    finally:
        _remove(partial)
    return destination


def _missing(url, destination, why):
    return (
        f"The weights are not in the cache and cannot be downloaded: {why}. "
        f"Fetch {url} on a machine with a network and put it at {destination} "
        "(it is checked before use), or unset KERAZOO_OFFLINE."
    )


def _paths(entry):
    home = kerazoo_home()
    stem = f"{entry.model}-{entry.tag}"
    return (
        home / "downloads" / entry.url.rsplit("/", 1)[-1],
        home / "weights" / f"{stem}.npz",
        home / "weights" / f"{stem}.json",
    )


def record_path(entry):
    """Where the record (sources, checksums, conversion report) of a ported
    entry is kept."""
    return _paths(entry)[2]


def source_checksum(entry):
    """`(algorithm, hex digest)` that the downloaded file of `entry` must have:
    its `sha256` when it has one (Keras publishes sha256s for some files, as
    ConvNeXt's), else its `md5`. An entry with neither is refused: a file that
    nothing can check is never used."""
    if entry.sha256:
        return "sha256", entry.sha256
    if entry.md5:
        return "md5", entry.md5
    raise WeightsIntegrityError(
        f"The manifest entry {entry.tag!r} of {entry.model!r} ({entry.url}) has "
        "neither a sha256 nor an md5: its download cannot be checked, so it is "
        "not fetched. Give the entry the checksum its publisher gives."
    )


def _source_file(entry, log):
    """Keras's file for `entry`: the one in the cache when its checksum holds
    (a bad one is removed), else downloaded."""
    algorithm, expected = source_checksum(entry)
    path, _, _ = _paths(entry)
    if path.exists():
        digest = file_digest(path, algorithm)
        if digest == expected:
            return path
        _remove(path)
        log(f"{path}: {algorithm} {digest}, expected {expected}: removed, refetching")
    return download(entry.url, path, log=log, **{algorithm: expected})


def sample_images(size, count=8, seed=0):
    """Images for conversion reports: scikit-image's photographs when it is
    installed, then random noise, `count` in all, `size` x `size`, 0-255."""
    import keras

    images = []
    try:
        from skimage import data

        for name in ("chelsea", "coffee", "astronaut", "rocket"):
            images.append(np.asarray(getattr(data, name)(), "float32")[..., :3])
    except ImportError:
        pass
    images = [
        keras.ops.convert_to_numpy(
            keras.ops.image.resize(x[None], (size, size), interpolation="bicubic")
        )[0]
        for x in images[:count]
    ]
    rng = np.random.default_rng(seed)
    while len(images) < count:
        images.append(rng.uniform(0, 255, (size, size, 3)).astype("float32"))
    return np.clip(np.stack(images), 0, 255)


def conversion_report(source, ported, size):
    """How closely `ported` computes `source`'s function on sample images."""
    x = sample_images(size)
    a = np.asarray(source.predict_on_batch(x), "float64")
    b = np.asarray(ported.predict_on_batch(x), "float64")
    return {
        "images": len(x),
        "max_abs_difference": float(np.max(np.abs(a - b))),
        "top1_agreement": int(np.sum(a.argmax(-1) == b.argmax(-1))),
    }


def port_keras_application(entry, *, build, log=print):
    """Downloads (once) and ports the Keras file of `entry` into the cache;
    returns the path of the ported `.npz`. `build` builds the kerazoo model
    (`kerazoo.models.create_model`). Runs in float32 whatever the caller's dtype
    policy, and leaves that policy as it was."""
    # Keras (and its backend) only once a model is built: the cache's listing
    # and checks stay light.
    from kerazoo._session import float32_policy

    with float32_policy():
        return _port_keras_application(entry, build, log)


def _port_keras_application(entry, build, log):
    # Keras (and its backend) only once a model is built, as above.
    import keras

    from kerazoo._session import clear_session

    source_path = _source_file(entry, log)
    _, ported_path, record_path = _paths(entry)
    log(f"porting {source_path.name} into kerazoo's {entry.model}")
    size = entry.input_size
    source = getattr(keras.applications, entry.application)(
        weights=str(source_path), input_shape=(size, size, 3)
    )
    model = from_keras_application(source, entry.model, build=build)
    report = conversion_report(source, model, size)
    log(
        f"  conversion report: max |difference| {report['max_abs_difference']:.2e} "
        f"on {report['images']} images, top-1 agrees on {report['top1_agreement']}"
    )
    preprocessing = model.get_layer("preprocessing")
    record = {
        "model": entry.model,
        "tag": entry.tag,
        "source_url": entry.url,
        "source_md5": entry.md5,
        "source_sha256": sha256_of(source_path),
        "options": dict(entry.options),
        "preprocessing": {
            "mode": preprocessing.mode,
            "scale": list(preprocessing.scale),
            "offset": list(preprocessing.offset),
        },
        "conversion_report": report,
        "kerazoo_version": __version__,
    }
    ported_path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(suffix=".npz", dir=ported_path.parent)
    os.close(handle)
    try:
        np.savez(
            partial, **{v.path: keras.ops.convert_to_numpy(v) for v in model.weights}
        )
        record["sha256"] = sha256_of(partial)
        _write_json(record_path, record)
        os.replace(partial, ported_path)
    finally:
        _remove(partial)
    clear_session()
    return ported_path


def _write_json(path, data):
    replace_text(path, json.dumps(data, indent=2))


def report_package_weights(entry, *, build, log=print):
    """Checks the EfficientNet-Lite weights that a package ships: the
    converted model's logits against an independent float64 NumPy computation
    of the checkpoint (`kerazoo.weights.reference`) on sample images, kept
    as a record beside the cache's other weights. Returns the record. `build`
    builds the kerazoo model (`kerazoo.models.create_model`). Runs in float32
    whatever the caller's dtype policy, and leaves that policy as it was."""
    # Keras (and its backend) only once a model is built, as above.
    from kerazoo._session import float32_policy

    with float32_policy():
        return _report_package_weights(entry, build, log)


def _report_package_weights(entry, build, log):
    # Keras (and its backend) only once a model is built, as above.
    from kerazoo._session import clear_session

    path = weights_file(entry)
    log(f"checking {entry.model}'s {entry.tag} weights against the reference")
    model = build(entry.model, classifier_activation=None)
    converter = find_converter(entry.converter, entry.model)
    converter.apply(model, load_checkpoint(path), origin=path)
    x = sample_images(entry.input_size, count=4)
    ours = np.asarray(model.predict_on_batch(x), "float64")
    reference = efficientnet_lite_logits(x, load_checkpoint(path))
    report = {
        "images": len(x),
        "max_abs_difference": float(np.max(np.abs(ours - reference))),
        "max_abs_logit": float(np.max(np.abs(reference))),
        "top1_agreement": int(np.sum(ours.argmax(-1) == reference.argmax(-1))),
        "reference": "float64 NumPy, kerazoo.weights.reference",
    }
    log(
        f"  conversion report: max |difference| {report['max_abs_difference']:.2e} "
        f"(logits up to {report['max_abs_logit']:.1f}) on {report['images']} "
        f"images, top-1 agrees on {report['top1_agreement']}"
    )
    record = {
        "model": entry.model,
        "tag": entry.tag,
        "package": entry.package,
        "file": path,
        "sha256": entry.sha256,
        "conversion_report": report,
    }
    record_path(entry).parent.mkdir(parents=True, exist_ok=True)
    _write_json(record_path(entry), record)
    clear_session()
    return record


def cached_weights(entry, log=print, *, build=None):
    """`(values, record)` of a `keras_applications` entry: the ported weights
    by variable path and their record, porting them first if needed (which
    needs `build`: `kerazoo.models.create_model`). A ported file whose sha256
    differs from its record is removed and refused."""
    _, ported_path, record_path = _paths(entry)
    if not (ported_path.exists() and record_path.exists()):
        if build is None:
            raise ValueError(
                f"The {entry.tag!r} weights of {entry.model!r} are not ported yet: "
                "porting them builds the model, so pass "
                "`build=kerazoo.models.create_model`."
            )
        port_keras_application(entry, build=build, log=log)
    record = json.loads(record_path.read_text())
    digest = sha256_of(ported_path)
    if digest != record.get("sha256"):
        _remove(ported_path)
        raise WeightsIntegrityError(
            f"{ported_path} has sha256 {digest}, its record {record_path} says "
            f"{record.get('sha256')}: the file is corrupt and was removed. Run "
            "again to port the weights anew."
        )
    with np.load(ported_path, allow_pickle=False) as data:
        values = {key: data[key] for key in data.files}
    return values, record
