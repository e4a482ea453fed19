"""bench/speed.py end to end at a tiny size on CPU (--demo): the JSON's fields, the FLOP floor against a hand count
from VGG-19's layer table, and the time-to-quality proxy."""

import json

import pytest

VGG19_CONVS = [  # (input channels, output channels, 2x2 max-pools before it): conv1_1 ... conv5_1
    (3, 64, 0), (64, 64, 0),
    (64, 128, 1), (128, 128, 1),
    (128, 256, 2), (256, 256, 2), (256, 256, 2), (256, 256, 2),
    (256, 512, 3), (512, 512, 3), (512, 512, 3), (512, 512, 3),
    (512, 512, 4),
]


def hand_forward_flops(height: int, width: int) -> int:
    """3x3 convolutions, 2 * 9 * Cin * Cout FLOPs per output position; each pool halves a side, rounding down."""
    return sum(2 * 9 * c_in * c_out * (height >> pools) * (width >> pools) for c_in, c_out, pools in VGG19_CONVS)


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("speed")


@pytest.fixture(scope="module")
def report(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed")
    assert bench.main(["--demo", "--device", "cpu", "--sizes", "64x36", "--settings", "min_short_side=18",
                       "--warmup", "1", "--reps", "2", "--time-to", "--time-to-iterations", "4",
                       "--time-to-resolution", "32", "--smooth", "2", "--out", str(out)]) == 0
    return json.loads((out / "speed.json").read_text())


def test_rows_report_time_floor_memory_and_plan(report):
    assert report["device"] and report["torch"] and report["gaussians"] == 1500
    assert report["gemm"]["dtype"] == "float32" and "CPU" in report["gemm"]["note"]
    assert report["settings"]["max_gpu_mem_gib"] == 24.0 and report["settings"]["min_short_side"] == 18
    [row] = report["rows"]
    assert (row["size"], row["width"], row["height"]) == ("64x36", 64, 36)
    assert len(row["ms_all"]) == 2 and row["ms_per_it"] == pytest.approx(sum(row["ms_all"]) / 2)
    assert row["scales"] == [[64, 36], [32, 18]]
    assert [p["method"] for p in row["plan"]] == ["autograd", "autograd"] and row["plan_text"] == "A,A"
    assert row["peak_gib"] is None  # no GPU memory on the CPU
    assert row["floor_ms"] == pytest.approx(1000 * row["flops"] / report["gemm"]["flops_per_s"])
    assert row["x_floor"] == pytest.approx(row["ms_per_it"] / row["floor_ms"])


def test_flop_floor_matches_a_hand_count(report):
    [row] = report["rows"]
    forward = hand_forward_flops(36, 64) + hand_forward_flops(18, 32)
    assert row["forward_flops"] == forward == 1_975_246_848
    assert row["flops"] == 3 * forward  # forward + backward counted as 2 forwards


def test_flops_scale_with_views_per_step(bench):
    sizes = [(1080, 1920), (540, 960)]
    assert bench.step_flops(sizes, views=2) == 2 * bench.step_flops(sizes)
    assert bench.vgg_forward_flops(1080, 1920) / (1080 * 1920) == pytest.approx(0.722e6, rel=1e-3)


def test_time_to_quality_is_read_from_the_loss_history(report):
    reached = report["time_to"]
    assert reached["size"] == "32x32" and reached["iterations"] == 4
    history = reached["history"]
    assert [h["iteration"] for h in history] == [1, 2, 3, 4]
    walls = [h["wall_s"] for h in history]
    assert walls == sorted(walls) and walls[-1] <= reached["total_s"]
    styles = [h["style"] for h in history]
    assert reached["final_style_smoothed"] == pytest.approx((styles[-2] + styles[-1]) / 2)
    index = reached["reached_iteration"] - 1
    assert reached["reached_s"] == walls[index]
    assert "bench/quality.py" in reached["proxy"]


def test_settling_is_the_first_smoothed_value_within_two_percent(bench):
    curve = bench.smoothed([10.0, 6.0, 4.0, 3.0, 2.0, 2.0, 2.0], window=2)
    assert curve == [10.0, 8.0, 5.0, 3.5, 2.5, 2.0, 2.0]
    assert bench.first_within(curve, 0.02) == 5
    assert bench.first_within([5.0, 1.01, 3.0, 1.0], 0.02) == 1


def test_sizes_and_settings_are_checked(bench):
    assert bench.parse_sizes("1920x1080, 7680x7680") == [(1920, 1080), (7680, 7680)]
    assert bench.parse_sizes("none") == []
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        bench.parse_sizes("1920")
    assert bench.parse_overrides("views_per_step=2,bf16=false") == {"views_per_step": 2, "bf16": False}
    with pytest.raises(ValueError, match="no setting"):
        bench.parse_overrides("speed=11")
