"""kdteach.online: ensembles, deep mutual learning (Algorithm 1) and born-again networks."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdteach import config, losses, online, train
from kdteach.data import Split


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 1, 4, 4, generator=g)
    y = (x.flatten(1)[:, :3].argmax(1) + 1 * (x.flatten(1)[:, 3] > 0)) % 3
    return Split(x, y)


def _mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))


def _build(seed):
    config.seed_everything(seed)
    return _mlp()


# --- Ensemble --------------------------------------------------------------------------------

def test_ensemble_averages_probabilities():
    members = [_build(s) for s in range(3)]
    x = _data().images
    out = online.Ensemble(members)(x)
    expected = torch.stack([F.softmax(m(x), -1) for m in members]).mean(0)
    assert torch.allclose(out.exp(), expected, atol=1e-6)
    assert torch.allclose(F.softmax(out, -1), expected, atol=1e-6)  # usable as logits


def test_ensemble_of_logits_is_the_mean_logit():
    members = [_build(s) for s in range(2)]
    x = _data().images
    out = online.Ensemble(members, average="logits")(x)
    assert torch.allclose(out, (members[0](x) + members[1](x)) / 2, atol=1e-6)


def test_ensemble_combine_matches_forward():
    members = [_build(s) for s in range(3)]
    x = _data().images
    stacked = torch.stack([m(x) for m in members])
    for average in ("probs", "logits"):
        assert torch.allclose(online.Ensemble.combine(stacked, average),
                              online.Ensemble(members, average)(x), atol=1e-6)


def test_ensemble_of_one_is_the_member():
    m = _build(0)
    x = _data().images
    assert torch.allclose(F.softmax(online.Ensemble([m])(x), -1), F.softmax(m(x), -1), atol=1e-6)


def test_ensemble_works_with_evaluate_and_as_a_teacher():
    data = _data()
    members = [_build(s) for s in range(2)]
    ens = online.Ensemble(members)
    assert 0 <= train.evaluate(ens, data).accuracy <= 1
    student = _build(5)
    h = train.distill(student, ens, data, epochs=1, batch_size=32, device="cpu", progress=False)
    assert len(h) == 1 and math.isfinite(h.last["train_loss"])


@pytest.mark.parametrize("members, average", [([], "probs"), ([nn.Linear(2, 2)], "vote")])
def test_ensemble_rejects_bad_arguments(members, average):
    with pytest.raises(ValueError):
        online.Ensemble(members, average)


# --- Deep mutual learning --------------------------------------------------------------------

def _reference_dml(peers, data, lr, in_turn):
    """One full-batch step of Algorithm 1 (Zhang et al. 2018), written out by hand."""
    peers = [copy.deepcopy(p) for p in peers]
    opts = [torch.optim.Adam(p.parameters(), lr=lr) for p in peers]
    x, y = data
    latest = [p(x).detach() for p in peers]
    for k, (p, opt) in enumerate(zip(peers, opts)):
        z = p(x)
        loss = losses.dml_loss(z, latest[:k] + latest[k + 1:], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if in_turn:
            latest[k] = p(x).detach()
    return peers


@pytest.mark.parametrize("n_peers", [2, 3])
@pytest.mark.parametrize("in_turn", [True, False])
def test_mutual_learning_is_algorithm_1(n_peers, in_turn):
    data = _data(32)
    peers = [_build(s) for s in range(n_peers)]
    expected = _reference_dml(peers, data, 0.05, in_turn)
    online.mutual_learning(peers, data, epochs=1, lr=0.05, batch_size=len(data), schedule=None,
                           in_turn=in_turn, device="cpu", progress=False)
    for got, want in zip(peers, expected):
        for a, b in zip(got.parameters(), want.parameters()):
            assert torch.allclose(a, b, atol=1e-5), "peer parameters differ from Algorithm 1"


def test_in_turn_matters_for_the_later_peers():
    data = _data(32)
    first = [_build(s) for s in range(2)]
    second = copy.deepcopy(first)
    online.mutual_learning(first, data, epochs=1, lr=0.05, batch_size=32, schedule=None,
                           in_turn=True, device="cpu", progress=False)
    online.mutual_learning(second, data, epochs=1, lr=0.05, batch_size=32, schedule=None,
                           in_turn=False, device="cpu", progress=False)
    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert same(first[0], second[0]), "peer 0 learns from the same predictions either way"
    assert not same(first[1], second[1]), "peer 1 should see peer 0's updated prediction"


def test_mutual_learning_histories():
    data, test = _data(96), _data(40, seed=1)
    peers = [_build(s) for s in range(2)]
    hs = online.mutual_learning(peers, data, epochs=3, lr=0.01, batch_size=32, eval_data=test,
                                device="cpu", progress=False)
    assert len(hs) == 2
    for h, p in zip(hs, peers):
        assert [r["epoch"] for r in h.records] == [1, 2, 3]
        assert all(math.isfinite(v) for v in h["train_loss"])
        assert all(0 <= v <= 1 for v in h["train_acc"] + h["eval_acc"])
        assert h.last["eval_acc"] == train.evaluate(p, test).accuracy
    assert hs[0]["train_loss"][-1] < hs[0]["train_loss"][0]


def test_mutual_learning_is_reproducible():
    data = _data(64)
    runs = []
    for _ in range(2):
        peers = [_build(s) for s in range(2)]
        online.mutual_learning(peers, data, epochs=2, batch_size=16, seed=3, device="cpu",
                               progress=False)
        runs.append(peers)
    for a, b in zip(*runs):
        assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_mutual_learning_rejects_bad_cohorts():
    data = _data()
    m = _build(0)
    with pytest.raises(ValueError, match="at least 2"):
        online.mutual_learning([m], data, epochs=1)
    with pytest.raises(ValueError, match="twice"):
        online.mutual_learning([m, m], data, epochs=1)


# --- Born-again networks ---------------------------------------------------------------------

def _kl(teacher, student, data):
    with torch.no_grad():
        return float(losses.kd_loss(student(data.images), teacher(data.images), T=1.0))


def test_born_again_generations():
    data, test = _data(96), _data(40, seed=1)
    models, histories = online.born_again(_mlp, data, generations=2, epochs=3, lr=0.02,
                                          batch_size=32, eval_data=test, device="cpu",
                                          progress=False)
    assert len(models) == len(histories) == 3
    assert len({id(m) for m in models}) == 3
    assert all(type(m) is type(models[0]) for m in models)
    assert all(len(h) == 3 and h.last["eval_acc"] is not None for h in histories)
    # each generation moved towards its teacher: closer than a fresh network of that seed
    for g in (1, 2):
        fresh = _build(g)
        assert _kl(models[g - 1], models[g], data) < _kl(models[g - 1], fresh, data)


def test_born_again_from_a_given_teacher():
    data = _data(64)
    teacher = _build(9)
    models, histories = online.born_again(_mlp, data, teacher=teacher, generations=1, epochs=1,
                                          device="cpu", progress=False)
    assert models[0] is teacher and len(histories[0]) == 0 and len(histories[1]) == 1


def test_born_again_needs_a_generation():
    with pytest.raises(ValueError):
        online.born_again(_mlp, _data(), generations=0)
