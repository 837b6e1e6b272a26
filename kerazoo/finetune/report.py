"""A run's history and figures: `history.csv`, `curves.png`, `confusion.png`."""

import csv
import pathlib

import numpy as np


def read_stage_history(path, stage):
    """Rows of a stage's CSVLogger file; a row written twice (a run killed
    between two callbacks and resumed) keeps its last copy."""
    path = pathlib.Path(path)
    if not path.exists():
        return []
    rows = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("epoch", "") in ("", "epoch"):
                continue
            epoch = int(row["epoch"])
            rows[epoch] = {"stage": stage, "epoch": epoch, **_numbers(row)}
    return [rows[e] for e in sorted(rows)]


def _numbers(row):
    out = {}
    for key, value in row.items():
        if key == "epoch":
            continue
        try:
            out[key] = float(value)
        except (TypeError, ValueError):
            continue
    return out


def write_history(rows, path):
    """One CSV of both stages: `stage, epoch, step (epoch across stages), ...`."""
    keys = ["stage", "epoch", "step"]
    for row in rows:
        keys += [k for k in row if k not in keys]
    with pathlib.Path(path).open("w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        for step, row in enumerate(rows, start=1):
            writer.writerow({**row, "step": step})


def plot_curves(rows, path, title=""):
    """Loss and accuracy against epochs of both stages, the boundary marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, metric in zip(axes, ("loss", "accuracy"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = [r.get(prefix + metric, np.nan) for r in rows]
            ax.plot(steps, values, style, marker=".", label=prefix + metric)
        boundary = sum(1 for r in rows if r["stage"] == 1)
        if 0 < boundary < len(rows):
            ax.axvline(boundary + 0.5, color="gray", lw=1)
            ax.text(boundary + 0.6, ax.get_ylim()[1], " stage 2", va="top", fontsize=8)
        ax.set_xlabel("epoch (both stages)")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def confusion_matrix(labels, predictions, num_classes):
    matrix = np.zeros((num_classes, num_classes), "int64")
    np.add.at(matrix, (np.asarray(labels), np.asarray(predictions)), 1)
    return matrix


def plot_confusion(matrix, class_names, path, title=""):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(class_names)
    size = min(max(4.0, 0.35 * n + 2), 14)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    if n <= 30:
        ticks = np.arange(n)
        ax.set_xticks(ticks, class_names, rotation=90, fontsize=7)
        ax.set_yticks(ticks, class_names, fontsize=7)
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        matrix[i, j],
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if matrix[i, j] > threshold else "black",
                    )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
