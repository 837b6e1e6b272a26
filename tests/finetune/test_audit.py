"""`kerazoo audit`: the chunked similarity finds the pairs brute force finds;
on a folder of digits with planted exact duplicates, near duplicates across
splits and flipped labels, the audit recovers them (precision and recall
printed) and writes its files; the command reuses the cached features."""

import json
import pathlib

import numpy as np
import pytest
from PIL import Image

from kerazoo import cli
from kerazoo.data.features import FeatureFile
from kerazoo.finetune.audit import SplitFeatures
from kerazoo.finetune.audit import audit
from kerazoo.finetune.audit import audit_dir
from kerazoo.finetune.audit import exact_duplicates
from kerazoo.finetune.audit import feature_statistics
from kerazoo.finetune.audit import similar_pairs
from kerazoo.recipes import load_recipe

TINY = pathlib.Path(__file__).with_name("tiny.yaml")
# A noised copy is at cosine >= 0.999 in the random ResNet-20's 64 features,
# two different digits at most about 0.987 (measured on this data).
THRESHOLD = 0.99


def brute_force(x, threshold):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    similarity = x @ x.T
    i, j = np.nonzero(np.triu(similarity >= threshold, 1))
    return {(int(a), int(b)) for a, b in zip(i, j, strict=True)}


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 1000])
def test_chunked_similarity_gives_the_pairs_of_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 8)).astype("float32")
    # Close copies of some rows, in other chunks than their originals.
    copies = rng.choice(150, 20, replace=False)
    x = np.concatenate([x, x[copies] + 0.01 * rng.normal(size=(20, 8))])
    expected = brute_force(x, 0.95)
    assert len(expected) >= 20
    pairs, similarities, truncated = similar_pairs(x, 0.95, chunk_size=chunk_size)
    assert {tuple(p) for p in pairs.tolist()} == expected
    assert not truncated and np.all(np.diff(similarities) <= 0)
    assert np.all(pairs[:, 0] < pairs[:, 1])


def test_similarity_keeps_the_most_similar_pairs_and_reads_split_files(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 6)).astype("float32")
    x[50:60] = x[:10] + 0.001 * rng.normal(size=(10, 6))
    files = {}
    for split, rows in (("train", x[:40]), ("validation", x[40:55]), ("test", x[55:])):
        file = FeatureFile(tmp_path / f"{split}.npy", len(rows), 6, "k")
        file.append(rows, np.zeros(len(rows)), len(rows))
        files[split] = file
    features = SplitFeatures(files)
    np.testing.assert_array_equal(features[35:60], x[35:60])
    mean, std = feature_statistics(features, chunk_size=16)
    np.testing.assert_allclose(mean, x.mean(0), atol=1e-5)
    standard = (x - x.mean(0)) / x.std(0)
    expected = brute_force(standard, 0.5)
    pairs, similarities, truncated = similar_pairs(
        features, 0.5, mean=mean, scale=std, chunk_size=16
    )
    assert {tuple(p) for p in pairs.tolist()} == expected
    top, top_similarities, truncated = similar_pairs(
        features, 0.5, mean=mean, scale=std, chunk_size=16, max_pairs=5
    )
    assert truncated and len(top) == 5
    np.testing.assert_allclose(top_similarities, similarities[:5], rtol=1e-6)
    with pytest.raises(ValueError, match="threshold must be in"):
        similar_pairs(x, 1.5)


def test_exact_duplicates_groups_equal_digests_and_skips_missing_ones():
    digests = np.array([b"a", b"b", b"a", b"", b"c", b"", b"a", b"c"], "S16")
    groups = exact_duplicates(digests)
    assert [g.tolist() for g in groups] == [[0, 2, 6], [4, 7]]


def test_audit_writes_beside_an_output_dir_without_a_run(tmp_path):
    recipe = load_recipe(TINY, [f"output_dir={tmp_path / 'run'}"])
    assert audit_dir(recipe) == tmp_path / "run-audit"
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "state.json").write_text("{}")
    assert audit_dir(recipe) == tmp_path / "run" / "audit"


def _digits_folder(root, per_class=30, seed=0):
    """`root/{train,val,test}/CLASS/*.png`: digits (distinct 8x8 images)
    upscaled to 32x32, 26 a class in train, 2 in val and 2 in test, with
    issues planted:

    - flipped: the first training image of classes 0-5 filed under class
      `c + 3`;
    - exact: copies of an image within train, from train to val, from val to
      test;
    - near: noised copies (+-3 of 255) of a training image of classes 3-9 in
      test;
    - and an empty file in train, which leaves no row: later rows are not
      the images of the same number.

    Returns `{kind: set of relative paths, or of pairs of them}`."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    seen, chosen = set(), {c: [] for c in range(10)}
    for image, label in zip(digits.images, digits.target, strict=True):
        if image.tobytes() not in seen and len(chosen[label]) < per_class:
            seen.add(image.tobytes())
            chosen[label].append(image)

    def write(split, label, name, pixels):
        path = root / split / str(label) / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        return str(path.relative_to(root))

    truth = {"flipped": set(), "exact": set(), "near": set()}
    for label, images in chosen.items():
        arrays = []
        for n, image in enumerate(images):
            gray = Image.fromarray((image * 255 / 16).astype(np.uint8))
            pixels = np.asarray(gray.resize((32, 32), Image.BILINEAR))
            pixels = np.repeat(pixels[..., None], 3, axis=-1)
            arrays.append(pixels)
            split = (
                "train" if n < per_class - 4 else "val" if n < per_class - 2 else "test"
            )
            if n == 0 and label < 6:
                path = write(split, (label + 3) % 10, f"{label}_{n}", pixels)
                truth["flipped"].add(path)
            else:
                write(split, label, f"{label}_{n}", pixels)
        if label < 3:
            source = {0: ("train", 1), 1: ("train", 1), 2: ("val", per_class - 4)}
            split, n = source[label]
            copy = write(("train", "val", "test")[label], label, "copy", arrays[n])
            truth["exact"].add(frozenset({f"{split}/{label}/{label}_{n}.png", copy}))
        else:
            noise = rng.integers(-3, 4, arrays[2].shape)
            noised = np.clip(arrays[2] + noise, 0, 255).astype(np.uint8)
            copy = write("test", label, "noised", noised)
            truth["near"].add(frozenset({f"train/{label}/{label}_2.png", copy}))
    (root / "train" / "0" / "0_broken.png").write_bytes(b"")
    return truth


def _scores(found, planted):
    hits = len(found & planted)
    precision = hits / len(found) if found else 1.0
    return precision, hits / len(planted)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    truth = _digits_folder(root)
    base = tmp_path_factory.mktemp("audit")
    overrides = [
        f"data.uri=folder:{root}",
        f"data.cache_dir={base / 'cache'}",
        f"output_dir={base / 'run'}",
    ]
    recipe = load_recipe(TINY, overrides)
    lines = []
    report = audit(recipe, threshold=THRESHOLD, out=base / "out", log=lines.append)
    return root, truth, overrides, report, lines


def test_audit_recovers_planted_duplicates_leakage_and_flipped_labels(planted):
    root, truth, _, report, _ = planted

    def name(entry):
        return str(pathlib.Path(entry["name"]).relative_to(root))

    groups = report["exact_duplicates"]["groups"]
    exact = {frozenset(name(e) for e in g["images"]) for g in groups}
    pairs = report["near_duplicates"]["pairs"]
    leaks = {
        frozenset(name(e) for e in p["images"])
        for p in pairs
        if p["cross_split"] and not p["exact"]
    }
    issues = {name(e) for e in report["label_issues"]["images"]}
    scores = {
        "exact duplicates": _scores(exact, truth["exact"]),
        "near duplicates across splits": _scores(leaks, truth["near"]),
        "flipped labels": _scores(issues, truth["flipped"]),
    }
    for kind, (precision, recall) in scores.items():
        print(f"{kind}: precision {precision:.2f}, recall {recall:.2f}")
    assert scores["exact duplicates"] == (1.0, 1.0)
    assert scores["near duplicates across splits"] == (1.0, 1.0)
    precision, recall = scores["flipped labels"]
    assert recall >= 0.5 and precision >= 0.5
    # Exact copies in two splits are leakage too, named as exact.
    exact_leaks = [p for p in pairs if p["cross_split"] and p["exact"]]
    assert len(exact_leaks) == 2
    assert all(p["similarity"] > 0.9999 for p in exact_leaks)
    assert not any(g["conflicting"] for g in groups)
    flagged = report["label_issues"]["images"][0]
    assert flagged["predicted"] != flagged["label"]
    assert report["label_issues"]["probe"]["out_of_fold_accuracy"] > 0.85


def test_audit_reports_class_balance_and_writes_its_files(planted):
    _, _, _, report, lines = planted
    balance = report["class_balance"]
    assert report["images"] == {"train": 261, "validation": 21, "test": 28}
    assert balance["validation"]["images"] == 21  # 20 and a copy
    assert balance["train"]["counts"]["0"] == 26  # one flipped out, one copy in
    assert balance["train"]["imbalance"] == pytest.approx(27 / 25)
    saved = json.loads(pathlib.Path(report["files"]["json"]).read_text())
    assert saved["near_duplicates"]["pairs"] == report["near_duplicates"]["pairs"]
    for kind in (
        "exact_duplicates",
        "near_duplicates",
        "label_issues",
        "class_balance",
    ):
        with Image.open(report["files"][kind]) as image:
            assert image.width > 100
    assert any("suspected label errors" in line for line in lines)


def test_audit_command_reuses_the_cached_features(planted, tmp_path, capsys):
    _, _, overrides, report, _ = planted
    args = ["audit", str(TINY), "--threshold", str(THRESHOLD)]
    for override in overrides:
        args += ["--set", override]
    assert cli.main([*args, "--output", str(tmp_path / "again")]) == 0
    out = capsys.readouterr().out
    assert out.count("reusing features-") == 3
    assert "pixel digests of" not in out  # cached too
    assert f"{report['near_duplicates']['cross_split']} across splits" in out
    again = json.loads((tmp_path / "again" / "audit.json").read_text())
    assert again["label_issues"] == report["label_issues"]
    assert cli.main([*args, "--threshold", "1.5"]) == 1
    assert "threshold must be in (0, 1]" in capsys.readouterr().err
