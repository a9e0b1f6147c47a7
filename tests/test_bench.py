"""kdteach.bench: the smoke benchmark runs and produces its table (no timing assertions)."""
from __future__ import annotations

import json

import pytest
import torch

from kdteach import bench, data

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
    bench.write_json({"a": 1}, target)
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
