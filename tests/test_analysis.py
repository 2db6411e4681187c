import os
import subprocess
import sys

import pytest

from keras_resnet import build_resnet, count_macs, stage_summary
from keras_resnet.analysis import markdown_table, weighted_depth

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# REFERENCE.md: multiply-adds with the stride on the first 1x1 (v1, the paper).
PAPER_MACS = {18: 1.814e9, 34: 3.664e9, 50: 3.858e9, 101: 7.570e9, 152: 11.282e9}


@pytest.mark.parametrize("depth", sorted(PAPER_MACS))
def test_count_macs_within_one_percent_of_reference(depth):
    model = build_resnet(depth)
    assert count_macs(model) == pytest.approx(PAPER_MACS[depth], rel=0.01)
    assert weighted_depth(model) == depth


def test_count_macs_v1_5_stride_on_3x3():
    assert count_macs(build_resnet(50, stride_in="3x3")) == pytest.approx(4.089e9, rel=0.01)


def test_count_macs_is_computed_from_layers():
    # One 3x3 conv from 3 to 4 channels on a 32x32 map is 3*3*3*4*32*32 multiply-adds;
    # doubling the input side quadruples every conv's cost.
    small = build_resnet(stage_repeats=(1, 1, 1, 1), width=4, input_shape=(32, 32, 3), include_top=False)
    large = build_resnet(stage_repeats=(1, 1, 1, 1), width=4, input_shape=(64, 64, 3), include_top=False)
    assert count_macs(large) == 4 * count_macs(small)


def test_count_macs_needs_fixed_input_size():
    model = build_resnet(stage_repeats=(1, 1, 1, 1), width=4, input_shape=(None, None, 3), include_top=False)
    with pytest.raises(ValueError, match="fixed input size"):
        count_macs(model)


def test_stage_summary_reproduces_table_1():
    rows = {row["stage"]: row for row in stage_summary(build_resnet(50))}
    assert [rows[f"stage{i}"]["output"].split("x")[0] for i in range(1, 6)] == ["112", "56", "28", "14", "7"]
    assert rows["stage1"]["layers"] == "7x7, 64, stride 2"
    assert rows["stage2"]["layers"] == "3x3 max pool, stride 2, [1x1, 64; 3x3, 64; 1x1, 256] x 3"
    assert rows["stage4"]["layers"] == "[1x1, 256; 3x3, 256; 1x1, 1024] x 6"
    # Trainable parameters, as summary.py --all and torchvision count them; the BN statistics that
    # Keras' count_params() adds are named in the total row.
    assert rows["total"]["params"] == 25_557_032
    assert sum(r["params"] for k, r in rows.items() if k != "total") == 25_557_032
    assert rows["total"]["layers"] == "50 weighted layers (+53,120 non-trainable: BN moving statistics)"
    assert rows["total"]["macs"] == count_macs(build_resnet(50))


def test_stage_summary_prints_as_a_table():
    summary = stage_summary(build_resnet(18))
    assert str(summary).splitlines()[:2] == ["| stage | output | layers | params | macs |", "|---|---|---|---|---|"]
    assert repr(summary) == str(summary) and "| total |  | 18 weighted layers" in str(summary)


def test_markdown_table():
    text = markdown_table([{"a": 1, "b": None}], ["a", "b"], formats={"a": "{:,}".format})
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 |  |"]


def test_summary_script_prints_table_1_for_resnet50():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "summary.py"), "resnet50"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "| stage3 | 28x28x512 | [1x1, 128; 3x3, 128; 1x1, 512] x 4 |" in result.stdout
    assert "3.858e9" in result.stdout and "| 25,557,032 |" in result.stdout


def test_summary_script_rejects_unknown_model_without_traceback():
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "scripts", "summary.py"), "resnet21"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2
    assert "Unknown model name 'resnet21'" in result.stderr and "resnet20" in result.stderr
    assert "Traceback" not in result.stderr
