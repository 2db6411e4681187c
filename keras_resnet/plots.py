"""Figures written as PNG: training curves and experiment plots."""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _atomic_savefig(figure, path):
    tmp = f"{path}.tmp.png"
    figure.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(figure)
    os.replace(tmp, path)


def plot_history(rows, path, title=None):
    """Loss and accuracy per epoch, train and validation, side by side (rows from history.csv)."""
    epochs = [int(r["epoch"]) for r in rows]
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if rows and key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, marker="o", ms=3,
                        label="validation" if prefix else "train")
        if metric == "loss":
            ax.set_yscale("log")  # the first epochs' validation loss would flatten the rest
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    _atomic_savefig(figure, path)


def plot_bars(labels, values, path, title=None, ylabel=None, ylim=(0, 1), errors=None):
    """One bar per label, its value written above it (for example test accuracy per mode);
    `errors` draws error bars (a standard deviation)."""
    figure, ax = plt.subplots(figsize=(1.4 * len(labels) + 2, 4))
    bars = ax.bar(labels, values, color="tab:blue", yerr=errors, capsize=4 if errors else 0)
    for bar, value in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.3f}", ha="center", va="bottom")
    ax.set_ylim(*ylim)
    ax.set_ylabel(ylabel or "")
    ax.grid(alpha=0.3, axis="y")
    if title:
        ax.set_title(title)
    _atomic_savefig(figure, path)


def plot_degradation(histories, path, title=None):
    """Figure 6 of the paper: training (dashed) and validation (bold) error per epoch, plain
    networks on the left, residual networks on the right, one colour per depth.

    `histories`: {model name such as "plain56" or "resnet56": history.csv rows}.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    depths = sorted({int("".join(filter(str.isdigit, name))) for name in histories})
    colours = dict(zip(depths, plt.cm.viridis([i / max(1, len(depths) - 1) * 0.85 for i in range(len(depths))])))
    for ax, kind, label in ((axes[0], "plain", "plain"), (axes[1], "resnet", "ResNet")):
        for name, rows in histories.items():
            if not name.startswith(kind):
                continue
            depth = int("".join(filter(str.isdigit, name)))
            epochs = [int(r["epoch"]) for r in rows]
            ax.plot(epochs, [100 * (1 - float(r["accuracy"])) for r in rows], "--", lw=1, color=colours[depth])
            ax.plot(epochs, [100 * (1 - float(r["val_accuracy"])) for r in rows], "-", lw=2.2, color=colours[depth],
                    label=f"{label}-{depth}")
        ax.set_xlabel("epoch")
        ax.set_title(f"{label} (dashed: training error, bold: validation error)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error (%)")
    if title:
        figure.suptitle(title)
    _atomic_savefig(figure, path)
