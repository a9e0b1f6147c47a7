"""Self-checks of notebook 05 (FitNets hints): right answers pass, common mistakes get a specific
hint."""
from __future__ import annotations

from kdteach.exercises import nb05 as exercises


def test_connector_parameters(run_check):
    ok, out = run_check(exercises.check_connector_parameters, 320)
    assert ok and out.startswith("✓")
    for wrong, words in [(256, "γ, β"), (288, "no bias"), (352, "no bias"), (384, "buffers"),
                         (2368, "1×1"), (40, "every"), (7, "off")]:
        ok, out = run_check(exercises.check_connector_parameters, wrong)
        assert not ok and out.startswith("✗") and words in out, (wrong, out)
    assert not run_check(exercises.check_connector_parameters, None)[0]
    assert "number" in run_check(exercises.check_connector_parameters, "lots")[1]


def test_fx_node_for_record_idx(run_check):
    assert run_check(exercises.check_fx_node_for_record_idx, "layer4.1.relu_1")[0]
    assert run_check(exercises.check_fx_node_for_record_idx, "layer4.1")[0]
    for wrong, words in [("layer4.1.relu", "first call"), ("backbone.layer4.1.relu_1", "backbone"),
                         ("layer4.1.add", "addition"), ("layer4.1.relu_2", "twice"),
                         ("fc", "not it"), (3, "str")]:
        ok, out = run_check(exercises.check_fx_node_for_record_idx, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run_check(exercises.check_fx_node_for_record_idx, ...)[0]
