"""Self-checks of notebooks 05-07: right answers pass, common mistakes get a specific hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import exercises, losses


def run(capsys, check, *args):
    ok = check(*args)
    return ok, capsys.readouterr().out


# --- 05 -----------------------------------------------------------------------------------

def test_connector_parameters(capsys):
    ok, out = run(capsys, exercises.check_connector_parameters, 320)
    assert ok and out.startswith("✓")
    for wrong, words in [(256, "γ, β"), (288, "no bias"), (352, "no bias"), (384, "buffers"),
                         (2368, "1×1"), (40, "every"), (7, "off")]:
        ok, out = run(capsys, exercises.check_connector_parameters, wrong)
        assert not ok and out.startswith("✗") and words in out, (wrong, out)
    assert not run(capsys, exercises.check_connector_parameters, None)[0]
    assert "number" in run(capsys, exercises.check_connector_parameters, "lots")[1]


def test_fx_node_for_record_idx(capsys):
    assert run(capsys, exercises.check_fx_node_for_record_idx, "layer4.1.relu_1")[0]
    assert run(capsys, exercises.check_fx_node_for_record_idx, "layer4.1")[0]
    for wrong, words in [("layer4.1.relu", "first call"), ("backbone.layer4.1.relu_1", "backbone"),
                         ("layer4.1.add", "addition"), ("layer4.1.relu_2", "twice"),
                         ("fc", "not it"), (3, "str")]:
        ok, out = run(capsys, exercises.check_fx_node_for_record_idx, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run(capsys, exercises.check_fx_node_for_record_idx, ...)[0]


# --- 06 -----------------------------------------------------------------------------------

def test_beta_sum_convention(capsys):
    assert run(capsys, exercises.check_beta_sum_convention, 1000 / 49)[0]
    assert run(capsys, exercises.check_beta_sum_convention, 20.408)[0]
    for wrong, words in [(49000, "Inverted"), (1000 / 49 / 128, "batch"), (500 / 49, "½"),
                         (1000 / 196, "7×7"), (1000 / 7, "49"), (1, "off")]:
        ok, out = run(capsys, exercises.check_beta_sum_convention, wrong)
        assert not ok and words in out, (wrong, out)
    assert not run(capsys, exercises.check_beta_sum_convention, None)[0]


@pytest.fixture
def preact():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(3, 5, 7, 7, generator=gen)


def test_attention_map_p1(capsys, preact):
    right = F.normalize(preact.abs().mean(1).flatten(1), dim=1)
    assert run(capsys, exercises.check_attention_map_p1, right, preact)[0]
    assert run(capsys, exercises.check_attention_map_p1, F.normalize(preact.abs().sum(1).flatten(1)), preact)[0]
    cases = [
        (F.normalize(preact.mean(1).flatten(1), dim=1), "absolute value"),
        (preact.abs().mean(1).flatten(1), "unit L2"),
        (preact.abs().sum(1).flatten(1), "unit L2"),
        (F.normalize(preact.abs().mean(1).flatten(1), p=1, dim=1), "L1"),
        (losses.attention_map(preact, p=2), "p = 2"),
        (right.view(3, 7, 7), "Flatten"),
        (right[:, :10], "Expected shape"),
        (right + 1, "Not the p = 1"),
        ([1, 2], "tensor"),
    ]
    for wrong, words in cases:
        ok, out = run(capsys, exercises.check_attention_map_p1, wrong, preact)
        assert not ok and words in out, (words, out)
    assert not run(capsys, exercises.check_attention_map_p1, None, preact)[0]


# --- 07 -----------------------------------------------------------------------------------

@pytest.fixture
def emb():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(6, 4, generator=gen) * 3


def test_rkd_psi_d(capsys, emb):
    d = torch.cdist(emb, emb)
    d.fill_diagonal_(0)
    off = ~torch.eye(6, dtype=torch.bool)
    right = d / d[off].mean()
    assert run(capsys, exercises.check_rkd_psi_d, right, emb)[0]
    # the same matrix as the loss uses internally
    assert run(capsys, exercises.check_rkd_psi_d, losses._normalised_distances(emb), emb)[0]
    sq = d.pow(2)
    for wrong, words in [(d / d.mean(), "diagonal"), (sq / sq[off].mean(), "squared"),
                         (d, "Divide by μ"), (d / d.max(), "largest"), (right[:3], "Expected"),
                         (right * 2, "Not ψ_D")]:
        ok, out = run(capsys, exercises.check_rkd_psi_d, wrong, emb)
        assert not ok and words in out, (words, out)
    assert not run(capsys, exercises.check_rkd_psi_d, None, emb)[0]


def test_sp_similarity(capsys, emb):
    g = emb @ emb.T
    right = F.normalize(g, p=2, dim=1)
    assert run(capsys, exercises.check_sp_similarity, right, emb)[0]
    assert run(capsys, exercises.check_sp_similarity, losses._similarity_matrix(emb), emb)[0]
    for wrong, words in [(F.normalize(g, 1), "torchdistill"), (F.normalize(g, dim=0), "columns"),
                         (g, "Scale each row"),
                         (F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T, "cosine"),
                         (right[:2], "Expected"), (right + 1, "Not G"), ("G", "tensor")]:
        ok, out = run(capsys, exercises.check_sp_similarity, wrong, emb)
        assert not ok and words in out, (words, out)
    assert not run(capsys, exercises.check_sp_similarity, None, emb)[0]
