"""bench/densify.py end to end at a tiny size on CPU: one colours-only run against several detail variants, and a
variant run alone against an earlier summary's colours-only run."""

import json

import pytest

TINY = ["--demo", "--device", "cpu", "--resolution", "48", "--iterations", "4", "--densify-every", "2",
        "--eval-views", "2"]


@pytest.fixture(scope="module")
def bench(bench_script):
    return bench_script("densify")


def test_variants_are_parsed_as_typed_settings(bench):
    assert bench.parse_variants("densify_every=100;;densify_threshold=0.5,geometry_lr=1e-3") == [
        {"densify_every": 100}, {}, {"densify_threshold": 0.5, "geometry_lr": 1e-3}]
    assert bench.parse_variants(None) == [{}]


@pytest.mark.slow
def test_variants_are_judged_against_one_colours_only_run(bench, tmp_path):
    first = tmp_path / "first"
    assert bench.main([*TINY, "--out", str(first), "--variants", "geometry_lr=0;geometry_lr=1e-3"]) == 0
    summary = json.loads((first / "summary.json").read_text())
    details = [run["overrides"]["detail"] for run in summary["runs"]]
    assert details == [0.0, 3.0, 3.0] and [r["overrides"]["geometry_lr"] for r in summary["runs"][1:]] == [0, 1e-3]
    assert len(summary["ratios"]) == 2 and all(r["gaussians"] > 1 for r in summary["ratios"])
    assert all(run["statistics"] in ("object", "frame") for run in summary["runs"])
    assert (first / "crop_48x27.jpg").is_file()
    again = tmp_path / "again"
    assert bench.main([*TINY, "--out", str(again), "--colours-only-from", str(first / "summary.json"),
                       "--variants", "geometry_lr=1e-3"]) == 0
    reused = json.loads((again / "summary.json").read_text())
    assert reused["runs"][0] == summary["runs"][0] and len(reused["runs"]) == 2
    for key in ("style_finest", "style_sos", "content", "consistency_l1", "gaussians"):  # the same run (not its time)
        assert reused["ratios"][0][key] == pytest.approx(summary["ratios"][1][key], rel=1e-4), key
