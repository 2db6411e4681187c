"""Figures written as PNG: training curves and experiment plots (written atomically)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter  # noqa: E402

from keras_resnet.files import atomic_save  # noqa: E402


def _save(figure, path):
    try:
        atomic_save(path, lambda tmp: figure.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    finally:
        plt.close(figure)


def _integer_epochs(ax, epochs):
    """Whole epochs on the x axis: every epoch for short runs (one epoch is a tick at 1, not 0.95..1.05)."""
    if len(epochs) <= 12:
        ax.set_xticks(sorted(set(epochs)))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=10))


def _loss_scale(ax, values):
    """Logarithmic where the values span more than a factor of 10 (the first epochs' loss would flatten the
    rest), with plain labels at 1, 2, 5 x 10^k only; linear otherwise, where a log axis has few labels."""
    finite = [v for v in values if v > 0 and v == v and v != float("inf")]
    if not finite or max(finite) / min(finite) <= 10:
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    ax.yaxis.set_major_formatter(formatter)
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_history(rows, path, title=None):
    """curves.png: `history_figure` written to `path`."""
    _save(history_figure(rows, title), path)


def history_figure(rows, title=None):
    """Loss, accuracy and learning rate per epoch (rows from history.csv): train and validation.

    The loss axis is logarithmic when the losses span more than a factor of 10 (`_loss_scale`).
    """
    epochs = [int(r["epoch"]) for r in rows]
    panels = [("loss", "loss"), ("accuracy", "accuracy")]
    has_lr = rows and "learning_rate" in rows[0]
    figure, axes = plt.subplots(1, 3 if has_lr else 2, figsize=(14 if has_lr else 10, 4))
    for ax, (metric, label) in zip(axes, panels):
        plotted = []
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if rows and key in rows[0]:
                values = [float(r[key]) for r in rows]
                plotted += values
                ax.plot(epochs, values, style, marker="o", ms=3, label="validation" if prefix else "train")
        if metric == "loss":
            _loss_scale(ax, plotted)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        _integer_epochs(ax, epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    if has_lr:
        ax = axes[2]
        rates = [float(r["learning_rate"]) for r in rows]
        ax.plot(epochs, rates, "-", marker="o", ms=3, color="tab:green")
        if min(rates) > 0 and max(rates) / min(rates) > 5:
            ax.set_yscale("log")  # step schedules divide by 10
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        ax.set_title("learning rate at each epoch's end", fontsize=9)
        _integer_epochs(ax, epochs)
        ax.grid(alpha=0.3)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_bars(labels, values, path, title=None, ylabel=None, ylim=(0, 1), errors=None, error_label=None):
    """One bar per label, its value written above it (and above its error bar); `errors` draws error
    bars, explained in a legend by `error_label` (for example "standard deviation over 3 seeds")."""
    figure, ax = plt.subplots(figsize=(1.6 * len(labels) + 2, 4.4))
    bars = ax.bar(labels, values, color="tab:blue", yerr=errors, capsize=5 if errors else 0,
                  error_kw={"label": error_label} if errors and error_label else None)
    for i, (bar, value) in enumerate(zip(bars, values)):
        top = value + (errors[i] if errors else 0)
        ax.annotate(f"{value:.3f}", (bar.get_x() + bar.get_width() / 2, top), xytext=(0, 4),
                    textcoords="offset points", ha="center", va="bottom")
    high = max(v + (e or 0) for v, e in zip(values, errors or [0] * len(values)))
    ax.set_ylim(ylim[0], max(ylim[1], high * 1.12))
    ax.set_ylabel(ylabel or "")
    ax.grid(alpha=0.3, axis="y")
    if errors and error_label:  # below the axis, where no bar can hide it
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    if title:
        ax.set_title(title, fontsize=10)
    _save(figure, path)


def plot_degradation(histories, path, title=None):
    """Figure 6 of the paper: training (dashed) and validation (bold) error per epoch, plain
    networks on the left, residual networks on the right, one colour per depth.

    `histories`: {model name such as "plain56" or "resnet56": history.csv rows}.
    """
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    depths = sorted({int("".join(filter(str.isdigit, name))) for name in histories})
    colours = dict(zip(depths, plt.cm.viridis([i / max(1, len(depths) - 1) * 0.85 for i in range(len(depths))])))
    all_epochs = [1]
    for ax, kind, label in ((axes[0], "plain", "plain"), (axes[1], "resnet", "ResNet")):
        for name, rows in histories.items():
            if not name.startswith(kind):
                continue
            depth = int("".join(filter(str.isdigit, name)))
            epochs = [int(r["epoch"]) for r in rows]
            ax.plot(epochs, [100 * (1 - float(r["accuracy"])) for r in rows], "--", lw=1, marker="o", ms=2,
                    color=colours[depth])
            ax.plot(epochs, [100 * (1 - float(r["val_accuracy"])) for r in rows], "-", lw=2.2, marker="o", ms=3,
                    color=colours[depth], label=f"{label}-{depth}")
            all_epochs = epochs
        ax.set_xlabel("epoch")
        _integer_epochs(ax, all_epochs)
        ax.set_title(f"{label} (dashed: training error, bold: validation error)", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("error (%)")
    if title:
        figure.suptitle(title)
    _save(figure, path)
