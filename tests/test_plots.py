"""The figures a person looks at: whole-epoch ticks, a readable loss axis, the learning rate shown."""

import matplotlib.pyplot as plt

from keras_resnet import plots


def rows(n):
    return [{"epoch": i, "loss": 2.0 / i, "val_loss": 2.2 / i, "accuracy": 1 - 1 / (i + 1),
             "val_accuracy": 1 - 1.2 / (i + 1), "learning_rate": 0.1 if i <= n // 2 else 0.01} for i in range(1, n + 1)]


def test_short_runs_get_whole_epoch_ticks_and_a_linear_loss_axis():
    for n in (1, 2, 6):
        figure = plots.history_figure(rows(n), "t")
        loss, accuracy, rate = figure.axes
        assert [t for t in loss.get_xticks()] == list(range(1, n + 1))  # not 0.95 .. 1.05
        assert loss.get_yscale() == "linear"  # a narrow range: a log axis would have one label
        assert rate.get_ylabel() == "learning rate" and len(rate.lines[0].get_xdata()) == n
        plt.close(figure)


def test_long_runs_get_a_log_loss_axis_with_plain_labels():
    figure = plots.history_figure(rows(30), "t")
    loss = figure.axes[0]
    assert loss.get_yscale() == "log" and max(loss.get_xticks()) <= 32
    figure.canvas.draw()
    assert not [label.get_text() for label in loss.get_yminorticklabels() if label.get_text()]  # no clash
    assert all("10^" not in label.get_text() for label in loss.get_yticklabels())
    plt.close(figure)


def test_bars_put_values_above_the_error_bars_and_explain_them(tmp_path):
    path = tmp_path / "bars.png"
    plots.plot_bars(["a", "b"], [0.5, 0.8], str(path), errors=[0.1, 0.05], error_label="error bars: std")
    assert path.stat().st_size > 5000
