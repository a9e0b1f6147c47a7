"""kdteach.bench: the smoke benchmark runs and produces its table (no timing assertions),
its command line refuses bad options, and other loops can be timed beside the built-in ones
(the hook ``python -m tools.cuda_graphs`` uses)."""
from __future__ import annotations

import json

import pytest
import torch

from kdteach import bench, data, losses, results

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    """``python -m kdteach.bench --smoke`` on the CPU, made smaller still for the test."""
    path = tmp_path_factory.mktemp("bench") / "bench.json"
    report = bench.main(["--smoke", "--device", "cpu", "--images", "512", "--test-images", "256",
                         "--warmup", "1", "--json", str(path)])
    return report, path


def test_smoke_runs_both_loops_and_writes_the_table(smoke_report, capsys):
    report, path = smoke_report
    loops = [(r["loop"], r["batch_size"]) for r in report["runs"]]
    assert loops == [("baseline", 64), ("kdteach", 64)]
    for r in report["runs"]:
        assert r["images"] == 512 and r["seconds"] > 0 and r["images_per_second"] > 0
        assert 0.0 <= r["test_accuracy"] <= 1.0 and r["train_loss"] > 0
        assert r["peak_device_bytes"] is None  # a CPU run has no device memory to report
        assert r["peak_host_bytes"] is None or r["peak_host_bytes"] > 0
    assert report["ratios"]["64"]["kdteach"]["speedup"] > 0
    assert report["command"].startswith("python -m kdteach.bench --smoke")
    env = report["environment"]
    assert env["device"].startswith("cpu") and env["torch"] == torch.__version__
    # The JSON file is the same report, complete.
    on_disk = json.loads(path.read_text())
    assert on_disk["ratios"] == report["ratios"]
    assert not list(path.parent.glob("*.tmp"))


def test_the_table_has_a_row_per_run_and_the_ratio(smoke_report):
    report, _ = smoke_report
    table = bench.format_table(report)
    lines = table.splitlines()
    header = next(line for line in lines if line.lstrip().startswith("batch") and "loop" in line)
    for column in ("s/epoch", "img/s", "dev MB", "host MB", "test acc", "speed-up"):
        assert column in header
    rows = [line for line in lines if line.split()[:2] in (["64", "baseline"], ["64", "kdteach"])]
    assert len(rows) == 2 and len({len(r) for r in rows + [header]}) == 1  # fixed width
    assert "kdteach is" in table and "x faster than the baseline" in table
    assert "torch " + torch.__version__ in table


def test_the_baseline_reads_the_same_pixels_as_kdteach():
    # Same work: torchvision's ToTensor + Normalize gives the images data.load returns.
    tutorial = bench.tutorial_dataset(200, seed=3)
    split = data.load("mnist", True, n=200, seed=3)
    images = torch.stack([tutorial[i][0] for i in range(len(tutorial))])
    labels = torch.tensor([tutorial[i][1] for i in range(len(tutorial))])
    assert torch.equal(labels, split.labels)
    torch.testing.assert_close(images, split.images, rtol=0, atol=1e-5)


def test_json_is_written_atomically(tmp_path):
    target = tmp_path / "sub" / "out.json"
    results.write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_host_peak_is_measured():
    with bench._PeakMemory(CPU) as mem:
        block = torch.ones(16 * 2**20 // 4)  # 16 MiB
        del block
    assert mem.device_bytes is None
    if mem.host_exact:
        assert mem.host_bytes >= 16 * 2**20


@pytest.mark.parametrize("argv", [["--warmup", "0"], ["--repeat", "0"], ["--batch-sizes", "0"]])
def test_bad_options_are_refused(argv):
    with pytest.raises(SystemExit):
        bench.main(argv)


# -- the hook for other loops (what python -m tools.cuda_graphs uses) ----------------------

class _Broken(Exception):
    pass


@pytest.fixture(scope="module")
def hooked_report():
    """A tiny CPU run with two extra loops, one of which fails, and value checks off."""
    seen = {}

    def recorded(student, teacher, split, *, batch_size, device, seed):
        seen.setdefault("checks_in_loop", losses.value_checks_enabled())
        seen.setdefault("split_device", split.images.device.type)
        return bench.kdteach_epoch(student, teacher, split, batch_size=batch_size,
                                   device=device, seed=seed)

    def broken(student, teacher, split, **kwargs):
        raise _Broken("this prototype does not work here")

    distill = bench.train.distill

    def spy(*args, **kwargs):
        seen.setdefault("distill_check_values", kwargs.get("check_values", "not passed"))
        return distill(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench.train, "distill", spy)
        report = bench.benchmark([64], device="cpu", smoke=True, images=512, test_images=256,
                                 warmup=1, value_checks=False,
                                 variants={"custom": recorded, "broken": broken},
                                 log=lambda *a, **k: None)
    return report, seen


def test_variants_are_timed_beside_the_built_in_ones(hooked_report):
    report, seen = hooked_report
    assert [r["loop"] for r in report["runs"]] == ["baseline", "kdteach", "custom"]
    assert set(report["ratios"]["64"]) == {"kdteach", "custom"}
    assert report["settings"]["variants"] == ["custom", "broken"]
    assert seen["split_device"] == "cpu"
    custom = next(r for r in report["runs"] if r["loop"] == "custom")
    assert custom["images"] == 512 and custom["train_loss"] > 0


def test_a_failing_extra_loop_is_reported_not_raised(hooked_report):
    report, _ = hooked_report
    assert list(report["failed"]) == ["broken batch 64"]
    assert "_Broken: this prototype does not work here" in report["failed"]["broken batch 64"]
    assert "broken batch 64 FAILED: _Broken" in bench.format_table(report)


def test_no_value_checks_holds_in_every_loop_and_only_there(hooked_report):
    report, seen = hooked_report
    assert report["settings"]["value_checks"] is False
    assert seen["checks_in_loop"] is False  # inside the benchmark's value_checks(False) block
    # distill keeps its default, which follows the enclosing value_checks(False) block
    # (tests/unit/test_train.py checks that default)
    assert seen["distill_check_values"] == "not passed"
    assert losses.value_checks_enabled()  # restored after the run


def test_a_built_in_loop_that_fails_still_ends_the_run(monkeypatch):
    def fail(*args, **kwargs):
        raise _Broken("distill is broken")

    monkeypatch.setattr(bench, "kdteach_epoch", fail)
    with pytest.raises(_Broken):
        bench.benchmark([64], device="cpu", smoke=True, images=256, test_images=128, warmup=1,
                        log=lambda *a, **k: None)
    assert losses.value_checks_enabled()


def test_variants_may_not_replace_a_built_in_loop():
    with pytest.raises(ValueError, match="built-in loop names"):
        bench.benchmark([64], device="cpu", variants={"kdteach": bench.kdteach_epoch})


def test_the_cuda_graph_prototype_is_not_in_the_package():
    assert not hasattr(bench, "graphed_epoch") and "kdteach+graphs" not in bench.LOOPS
    with pytest.raises(SystemExit):
        bench.parse_args(["--graphs"])


def test_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        bench.parse_args(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m kdteach.bench")
    assert "--no-value-checks" in out and "value_checks(False)" in out
    assert "CHECK_VALUES" not in out and "--graphs" not in out
