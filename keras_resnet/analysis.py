"""Cost of a built model: multiply-adds and a per-stage summary in the form of Table 1.

Everything here is computed from the layers of the built model (kernel sizes, channels
and output shapes), never from a table, so it also checks the builders.
"""

import re

import keras
import numpy as np

_STAGE = re.compile(r"^(stage\d+)_")
_BLOCK = re.compile(r"^(stage\d+_block\d+)_")


def iter_layers(model):
    """Every layer of `model`, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from iter_layers(layer)
        else:
            yield layer


def _static(shape, layer):
    if any(d is None for d in shape[1:]):
        raise ValueError(
            "count_macs needs a fixed input size; build the model with, for example, "
            f"input_shape=(224, 224, 3). Received: layer {layer.name!r} with output shape {shape}"
        )
    return shape


def layer_macs(layer):
    """Multiply-adds of one conv or dense layer for one image (0 for other layers)."""
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        _, h, w, c = _static(layer.output.shape, layer)
        kh, kw = layer.kernel_size
        return h * w * c * kh * kw
    if isinstance(layer, keras.layers.Conv2D):
        _, h, w, c = _static(layer.output.shape, layer)
        kh, kw = layer.kernel_size
        in_channels = layer.input.shape[-1]
        return h * w * c * kh * kw * in_channels // layer.groups
    if isinstance(layer, keras.layers.Dense):
        shape = _static(layer.input.shape, layer)
        positions = int(np.prod(shape[1:-1])) if len(shape) > 2 else 1
        return positions * shape[-1] * layer.units
    return 0


def count_macs(model):
    """Multiply-adds of all conv and dense layers for one image (paper's "FLOPs")."""
    return sum(layer_macs(layer) for layer in iter_layers(model))


def count_trainable_params(model):
    """Trainable parameters (BN moving statistics excluded), as torchvision counts them."""
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def weighted_depth(model):
    """Conv and dense layers on the main path: the paper's layer count (shortcuts excluded)."""
    return sum(
        1
        for layer in iter_layers(model)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and "_shortcut" not in layer.name
    )


def _describe_conv(layer):
    kh, kw = layer.kernel_size
    return f"{kh}x{kw}, {layer.filters}"


def _describe_stage(stage_layers):
    """Table 1's middle column, read from the layers: "[3x3, 64; 3x3, 64] x 2"."""
    parts = []
    blocks = {}
    for layer in stage_layers:
        match = _BLOCK.match(layer.name)
        if match:
            blocks.setdefault(match.group(1), []).append(layer)
        elif isinstance(layer, keras.layers.Conv2D):
            stride = layer.strides[0]
            parts.append(_describe_conv(layer) + (f", stride {stride}" if stride > 1 else ""))
        elif isinstance(layer, keras.layers.MaxPooling2D):
            parts.append(f"{layer.pool_size[0]}x{layer.pool_size[1]} max pool, stride {layer.strides[0]}")
    if blocks:
        first = next(iter(blocks.values()))
        convs = [
            _describe_conv(layer)
            for layer in first
            if isinstance(layer, keras.layers.Conv2D) and "_shortcut" not in layer.name
        ]
        parts.append(f"[{'; '.join(convs)}] x {len(blocks)}")
    return ", ".join(parts)


def _params(layer_list):
    return int(sum(np.prod(w.shape) for layer in layer_list for w in layer.trainable_weights))


class StageSummary(list):
    """`stage_summary`'s rows (dicts), shown as the markdown table when printed."""

    def __str__(self):
        return markdown_table(self, ["stage", "output", "layers", "params", "macs"],
                              formats={"params": "{:,}".format, "macs": format_count})

    __repr__ = _repr_markdown_ = __str__


def stage_summary(model):
    """One row per stage: output size, layers as in Table 1, trainable parameters, multiply-adds.

    Stages are the `stage{N}_` name groups of our builders; everything else (input
    preprocessing, pooling, classifier) goes into an "input" or "head" row. Parameters are
    trainable parameters (torchvision's count, as `count_trainable_params`); the total row's
    layers column gives the non-trainable ones (BN moving statistics) that Keras'
    `count_params()` adds. Printing the result shows the markdown table.
    """
    groups = {}
    for layer in iter_layers(model):
        match = _STAGE.match(layer.name)
        if match:
            key = match.group(1)
        elif isinstance(layer, keras.layers.InputLayer):
            continue
        elif layer.name in ("preprocessing",):
            key = "input"
        else:
            key = "head"
        groups.setdefault(key, []).append(layer)
    rows = []
    for key, group in groups.items():
        out_layer = group[-1]
        shape = tuple(out_layer.output.shape[1:])
        rows.append(
            {
                "stage": key,
                "output": "x".join("?" if d is None else str(d) for d in shape),
                "layers": _describe_stage(group) if key.startswith("stage") else ", ".join(
                    type(layer).__name__ for layer in group
                ),
                "params": _params(group),
                "macs": sum(layer_macs(layer) for layer in group),
            }
        )
    trainable = count_trainable_params(model)
    frozen = model.count_params() - trainable
    rows.append(
        {
            "stage": "total",
            "output": "",
            "layers": f"{weighted_depth(model)} weighted layers" + (
                f" (+{frozen:,} non-trainable: BN moving statistics)" if frozen else ""),
            "params": trainable,
            "macs": sum(row["macs"] for row in rows),
        }
    )
    return StageSummary(rows)


def format_count(value):
    """Multiply-adds the way the paper writes them: 1814073856 -> "1.814e9", 40551040 -> "40.55e6"."""
    if value >= 1e8:
        return f"{value / 1e9:.3f}e9"
    if value >= 1e5:
        return f"{value / 1e6:.2f}e6"
    return f"{value:,}"


def markdown_table(rows, columns=None, formats=None):
    """Rows (dicts) as a GitHub markdown table; `formats` maps a column to a function."""
    columns = columns or list(rows[0])
    formats = formats or {}
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [formats.get(c, str)(row[c]) if row.get(c) is not None else "" for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def stage_summary_markdown(model):
    """`stage_summary` as markdown, with parameters and multiply-adds formatted."""
    return str(stage_summary(model))


def compare_stage_summaries(models):
    """Table 1 side by side: one row per stage, one column per model (`{name: model}`), cells
    the stage's layers; then rows of trainable parameters and multiply-adds."""
    summaries = {name: {row["stage"]: row for row in stage_summary(model)} for name, model in models.items()}
    first = next(iter(summaries.values()))
    stages = [stage for stage in first if stage.startswith("stage")]
    rows = []
    for stage in stages:
        row = {"stage": stage, "output": first[stage]["output"].rsplit("x", 1)[0]}
        row.update({name: summary[stage]["layers"] if stage in summary else "" for name, summary in summaries.items()})
        rows.append(row)
    rows.append({"stage": "parameters", "output": "",
                 **{name: f"{count_trainable_params(model):,}" for name, model in models.items()}})
    rows.append({"stage": "multiply-adds", "output": "",
                 **{name: format_count(summary["total"]["macs"]) for name, summary in summaries.items()}})
    return markdown_table(rows, ["stage", "output", *models])
