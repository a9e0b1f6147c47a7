"""kdteach.sequence_kd: the batch sources of sequence-level and on-policy distillation, the
prompt mask, the losses and the measures."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from kdteach import gpt, losses, sequence_kd as sk, train

V, P, K = 11, 4, 5


@pytest.fixture
def ids():
    return torch.randint(0, V, (500,), generator=torch.Generator().manual_seed(0))


def tiny(seed=0):
    torch.manual_seed(seed)
    return gpt.GPT(gpt.GPTConfig(V, P + K, n_layer=1, n_head=2, n_embd=8))


def test_prompts_are_windows_of_the_data(ids):
    w = sk.prompts(ids, 6, P, K, seed=3)
    assert w.shape == (6, P + K)
    for row in w:  # each row is a contiguous piece of ids
        starts = [i for i in range(len(ids) - P - K) if torch.equal(ids[i:i + P + K], row)]
        assert starts
    assert torch.equal(w, sk.prompts(ids, 6, P, K, seed=3))
    assert not torch.equal(w, sk.prompts(ids, 6, P, K, seed=4))


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "n must"), (dict(prompt_len=0), "prompt_len"), (dict(new_tokens=-1), "new_tokens"),
    (dict(prompt_len=300, new_tokens=300), "too few"),
])
def test_prompts_bad_input(ids, kwargs, match):
    args = dict(n=2, prompt_len=P, new_tokens=K) | kwargs
    with pytest.raises(ValueError, match=match):
        sk.prompts(ids, args["n"], args["prompt_len"], args["new_tokens"])


def test_batched_beam_search_matches_one_prompt_at_a_time(ids):
    model = tiny()
    prompts = sk.prompts(ids, 3, P, K, seed=1)[:, :P]
    out = sk.beam_continuations(model, prompts, K, beams=3)
    for row, prompt in zip(out, prompts):
        assert torch.equal(row, gpt.beam_search(model, prompt, K, beams=3))
    assert torch.equal(sk.beam_continuations(model, prompts, K, beams=1),
                       gpt.generate(model, prompts, K, greedy=True))
    assert model.training  # its mode is restored


def test_continue_text_modes(ids):
    model, prompts = tiny(), sk.prompts(ids, 2, P, K)[:, :P]
    a = sk.continue_text(model, prompts, K, generator=torch.Generator().manual_seed(0))
    b = sk.continue_text(model, prompts, K, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, P + K) and torch.equal(a, b) and torch.equal(a[:, :P], prompts)
    with pytest.raises(ValueError, match="mode="):
        sk.continue_text(model, prompts, K, mode="nucleus")


def test_teacher_continuations_keep_data_prompts(ids):
    seqs = sk.teacher_continuations(tiny(), ids, 5, prompt_len=P, new_tokens=K, mode="greedy",
                                    seed=2, chunk=2)
    assert seqs.shape == (5, P + K)
    data = sk.prompts(ids, 5, P, K, seed=2)
    assert torch.equal(seqs[:, :P], data[:, :P])


def test_sequence_source_masks_prompt_and_covers_every_row(ids):
    seqs = sk.prompts(ids, 10, P, K)
    src = sk.SequenceSource(seqs, P, 4, seed=1)
    seen = []
    for x, y, idx in src.batches():
        assert torch.equal(x, seqs[idx, :-1])
        assert (y[:, :P - 1] == sk.IGNORE).all()
        assert torch.equal(y[:, P - 1:], seqs[idx, P:])
        seen += idx.tolist()
    assert sorted(seen) == list(range(10)) and len(src) == 3
    again = [idx.tolist() for _, _, idx in sk.SequenceSource(seqs, P, 4, seed=1).batches()]
    assert sum(again, []) == seen


@pytest.mark.parametrize("sequences, prompt_len, error", [
    (torch.zeros(3, 9), P, TypeError), (torch.zeros(3, 4, dtype=torch.long), 4, ValueError),
])
def test_sequence_source_bad_input(sequences, prompt_len, error):
    with pytest.raises(error):
        sk.SequenceSource(sequences, prompt_len, 2)


def test_on_policy_fraction_zero_is_the_data(ids):
    src = sk.OnPolicySource(ids, tiny(), prompt_len=P, new_tokens=K, batch_size=4, steps=2,
                            fraction=0.0, seed=5)
    gen = torch.Generator().manual_seed(5 * 1_000_003)
    for x, y, _ in src.batches():
        data = sk.prompts(ids, 4, P, K, generator=gen)
        assert torch.equal(x, data[:, :-1]) and torch.equal(y[:, P - 1:], data[:, P:])
        assert (y[:, :P - 1] == sk.IGNORE).all()


def test_on_policy_rows_are_the_students_own_samples(ids):
    student = tiny()
    src = sk.OnPolicySource(ids, student, prompt_len=P, new_tokens=K, batch_size=4, steps=1,
                            fraction=0.5, seed=0)
    x, y, _ = next(src.batches())
    data = sk.prompts(ids, 4, P, K, generator=torch.Generator().manual_seed(0))
    own = gpt.generate(student, data[:2, :P], K, generator=torch.Generator().manual_seed(7919))
    assert torch.equal(x[:2], own[:, :-1]) and torch.equal(y[:2, P - 1:], own[:, P:])
    assert torch.equal(x[2:], data[2:, :-1])  # the rest stays data
    assert student.training


@pytest.mark.parametrize("kwargs, error", [
    (dict(fraction=1.5), ValueError), (dict(fraction="all"), TypeError),
    (dict(steps=0), ValueError), (dict(temperature=0.0), ValueError), (dict(seed=1.5), TypeError),
])
def test_on_policy_bad_input(ids, kwargs, error):
    args = dict(prompt_len=P, new_tokens=K, batch_size=4, steps=1) | kwargs
    with pytest.raises(error):
        sk.OnPolicySource(ids, tiny(), **args)


def test_on_policy_source_trains_through_distill(ids):
    teacher, student = tiny(1).eval(), tiny(2)
    before = copy.deepcopy(student.state_dict())
    src = sk.OnPolicySource(ids, student, prompt_len=P, new_tokens=K, batch_size=4, steps=3,
                            fraction=1.0)
    history = train.distill(student, teacher, src, sk.sequence_loss("jsd"), epochs=1, lr=1e-2,
                            progress=False)
    assert math.isfinite(history.last["train_loss"])
    assert any(not torch.equal(before[k], v) for k, v in student.state_dict().items())


def test_continuation_rows_and_losses():
    torch.manual_seed(0)
    s, t = torch.randn(2, P + K - 1, V), torch.randn(2, P + K - 1, V)
    y = torch.randint(0, V, (2, P + K - 1))
    y[:, :P - 1] = sk.IGNORE
    rows = sk.continuation_rows(s, y)
    assert torch.equal(rows, s[:, P - 1:].flatten(0, 1))
    out = train.Outputs(s, t, y)
    tail = lambda z: z[:, P - 1:].flatten(0, 1)
    assert torch.allclose(sk.sequence_loss("forward")(out),
                          F.kl_div(F.log_softmax(tail(s), -1), F.softmax(tail(t), -1),
                                   reduction="batchmean"))
    assert torch.allclose(sk.sequence_loss("reverse")(out), losses.reverse_kl(tail(s), tail(t)))
    assert torch.allclose(sk.sequence_loss("jsd", beta=0.3)(out),
                          losses.generalized_jsd(tail(s), tail(t), beta=0.3))
    assert torch.allclose(sk.continuation_loss(s, y), F.cross_entropy(tail(s), tail(y)))
    assert torch.allclose(sk.continuation_loss(s, y), F.cross_entropy(s.flatten(0, 1), y.flatten()))
    with pytest.raises(ValueError, match="divergence"):
        sk.sequence_loss("tvd")
    with pytest.raises(ValueError, match="B, L, V"):
        sk.continuation_rows(s[0], y[0])


def test_measures(ids):
    model = tiny()
    seqs = sk.prompts(ids, 3, P, K)
    x, y = seqs[:, :-1], seqs[:, 1:]
    with torch.no_grad():
        logp = F.log_softmax(model.eval()(x), -1)[:, P - 1:]
    manual = logp.gather(-1, y[:, P - 1:, None]).mean() / math.log(2)
    assert sk.teacher_logprob(model, seqs, P) == pytest.approx(float(manual), rel=1e-5)
    assert sk.continuation_bpc(model, seqs, P) == pytest.approx(-float(manual), rel=1e-5)
    same = sk.position_divergence(model, copy.deepcopy(model), seqs, P, "jsd")
    assert same == pytest.approx(0, abs=1e-6)
    assert sk.position_divergence(tiny(3), model, seqs, P, "forward") > 0
    with pytest.raises(ValueError, match="divergence"):
        sk.position_divergence(model, model, seqs, P, "l2")


def test_distinct_ngrams_by_hand():
    seqs = torch.tensor([[9, 1, 2, 1, 2, 1], [9, 3, 3, 3, 3, 3]])  # prompt_len 1
    # 2-grams: (1,2),(2,1),(1,2),(2,1),(3,3)x4 -> 3 distinct of 8
    assert sk.distinct_ngrams(seqs, 1, 2) == pytest.approx(3 / 8)
    with pytest.raises(ValueError, match="fewer than"):
        sk.distinct_ngrams(seqs, 1, 6)
