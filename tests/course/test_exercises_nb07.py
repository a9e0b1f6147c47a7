"""Self-checks of notebook 07 (relational KD): right answers pass, common mistakes get a specific
hint."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kdteach import losses
from kdteach.exercises import nb07 as exercises


@pytest.fixture
def emb():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(6, 4, generator=gen) * 3


def test_rkd_psi_d(run_check, emb):
    d = torch.cdist(emb, emb)
    d.fill_diagonal_(0)
    off = ~torch.eye(6, dtype=torch.bool)
    right = d / d[off].mean()
    assert run_check(exercises.check_rkd_psi_d, right, emb)[0]
    # the same matrix as the loss uses internally
    assert run_check(exercises.check_rkd_psi_d, losses._normalised_distances(emb), emb)[0]
    sq = d.pow(2)
    for wrong, words in [(d / d.mean(), "diagonal"), (sq / sq[off].mean(), "squared"),
                         (d, "Divide by μ"), (d / d.max(), "largest"), (right[:3], "Expected"),
                         (right * 2, "Not ψ_D")]:
        ok, out = run_check(exercises.check_rkd_psi_d, wrong, emb)
        assert not ok and words in out, (words, out)
    assert not run_check(exercises.check_rkd_psi_d, None, emb)[0]


def test_sp_similarity(run_check, emb):
    g = emb @ emb.T
    right = F.normalize(g, p=2, dim=1)
    assert run_check(exercises.check_sp_similarity, right, emb)[0]
    assert run_check(exercises.check_sp_similarity, losses._similarity_matrix(emb), emb)[0]
    for wrong, words in [(F.normalize(g, 1), "torchdistill"), (F.normalize(g, dim=0), "columns"),
                         (g, "Scale each row"),
                         (F.normalize(emb, dim=1) @ F.normalize(emb, dim=1).T, "cosine"),
                         (right[:2], "Expected"), (right + 1, "Not G"), ("G", "tensor")]:
        ok, out = run_check(exercises.check_sp_similarity, wrong, emb)
        assert not ok and words in out, (words, out)
    assert not run_check(exercises.check_sp_similarity, None, emb)[0]


def _sp_rows(s, t, p):
    gs, gt = F.normalize(s @ s.T, p=p, dim=1), F.normalize(t @ t.T, p=p, dim=1)
    return float((gt - gs).pow(2).sum() / len(s) ** 2)


def test_gamma_l1(run_check):
    gen = torch.Generator().manual_seed(2)
    s = torch.rand(6, 4, generator=gen)           # non-negative, like post-ReLU embeddings
    t = torch.rand(6, 9, generator=gen) * 5
    ratio = _sp_rows(s, t, 2) / _sp_rows(s, t, 1)
    assert ratio > 2                               # the L1 loss is clearly smaller here
    assert run_check(exercises.check_gamma_l1, 3000 * ratio, s, t)[0]
    ok, out = run_check(exercises.check_gamma_l1, torch.tensor(3000 * ratio), s, t)
    assert ok and "does not carry over" in out, out
    for wrong, words in [(3000 / ratio, "Inverted"), (3000, "does not carry over"),
                         (3000 * 6, "b = 6"), (3000 * ratio ** 0.5, "squares"),
                         (1.0, "is off"), ("γ", "number"), (True, "bool")]:
        ok, out = run_check(exercises.check_gamma_l1, wrong, s, t)
        assert not ok and words in out, (wrong, out)
    assert not run_check(exercises.check_gamma_l1, None, s, t)[0]
