"""kdteach.gpt: the small GPT, its presets, decoding and bits per character."""
from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from kdteach import features, gpt
from kdteach.gpt import GPT, GPTConfig

V = 11


def tiny(seed: int = 0, *, vocab_size: int = V, block_size: int = 8, sharp: float = 1.0) -> GPT:
    """A tiny GPT in eval mode; ``sharp`` scales the output layer (peaked predictions)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size, block_size, n_layer=2, n_head=2, n_embd=16)).eval()
    with torch.no_grad():
        model.head.weight.mul_(sharp)
    return model


def log_prob(model: GPT, ids: torch.Tensor, n_prompt: int) -> float:
    """Total log-probability the model gives ids[n_prompt:] after ids[:n_prompt]
    (one forward pass: the whole sequence fits in the block)."""
    with torch.no_grad():
        logp = F.log_softmax(model(ids[None, :-1])[0], dim=-1)  # (T - 1, V)
    return float(logp[n_prompt - 1:].gather(1, ids[n_prompt:, None]).sum())


# -- the model ----------------------------------------------------------------------

def test_output_shape_and_names():
    model = tiny()
    assert model(torch.randint(0, V, (3, 5))).shape == (3, 5, V)
    names = features.module_names(model)
    for name in ("tok_emb", "pos_emb", "blocks.0", "blocks.1", "ln_f", "head"):
        assert name in names


def test_attention_is_causal():
    model = tiny()
    idx = torch.randint(0, V, (2, 8))
    changed = idx.clone()
    changed[:, 5] = (changed[:, 5] + 1) % V
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :5], b[:, :5], atol=1e-6)
    assert not torch.allclose(a[:, 5:], b[:, 5:], atol=1e-4)


def test_record_gives_each_blocks_output():
    model = tiny()
    with features.record(model, ["blocks.0", "blocks.1"]) as feats:
        model(torch.randint(0, V, (3, 6)))
    assert feats["blocks.0"].shape == feats["blocks.1"].shape == (3, 6, 16)


def test_preset_sizes():
    teacher = sum(p.numel() for p in GPT(gpt.teacher_config(65)).parameters())
    student = sum(p.numel() for p in GPT(gpt.student_config(65)).parameters())
    assert 200_000 <= teacher <= 800_000
    assert teacher / 14 <= student <= teacher / 7  # about a tenth
    assert gpt.teacher_config(65).block_size == 64 == gpt.student_config(65).block_size


def test_too_long_or_malformed_input_raises():
    model = tiny()
    with pytest.raises(ValueError, match="block_size"):
        model(torch.zeros(1, 9, dtype=torch.long))
    with pytest.raises(ValueError, match="batch"):
        model(torch.zeros(8, dtype=torch.long))


@pytest.mark.parametrize("kwargs, match", [({"n_head": 3}, "multiple"),
                                           ({"n_layer": 0}, "n_layer"),
                                           ({"dropout": 1.0}, "dropout")])
def test_bad_config(kwargs, match):
    args = {"vocab_size": V, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16, **kwargs}
    with pytest.raises(ValueError, match=match):
        GPTConfig(**args)


# -- decoding -----------------------------------------------------------------------

def test_greedy_is_the_argmax_chain_and_crops_the_context():
    model = tiny(sharp=5.0)
    prompt = torch.tensor([1, 2, 3, 4, 5])
    out = gpt.generate(model, prompt, 10, greedy=True)  # 15 tokens: past block_size = 8
    assert out.shape == (15,) and torch.equal(out[:5], prompt)
    assert torch.equal(out, gpt.generate(model, prompt, 10, greedy=True))
    ids = prompt.clone()
    with torch.no_grad():
        for _ in range(10):
            nxt = model(ids[None, -8:])[0, -1].argmax()
            ids = torch.cat([ids, nxt[None]])
    assert torch.equal(out, ids)


def test_sampling_top_k_1_is_greedy_and_sampling_is_reproducible():
    model = tiny(sharp=5.0)
    prompt = torch.tensor([[1, 2], [3, 4]])
    greedy = gpt.generate(model, prompt, 6, greedy=True)
    assert greedy.shape == (2, 8)
    assert torch.equal(gpt.generate(model, prompt, 6, top_k=1), greedy)
    a = gpt.generate(model, prompt, 6, temperature=2.0, generator=torch.Generator().manual_seed(0))
    b = gpt.generate(model, prompt, 6, temperature=2.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


def test_top_k_samples_only_among_the_k_most_likely():
    model = tiny()
    gen = torch.Generator().manual_seed(0)
    prompt = torch.tensor([[3]] * 64)
    out = gpt.generate(model, prompt, 1, top_k=2, temperature=5.0, generator=gen)
    with torch.no_grad():
        allowed = set(model(prompt[:1])[0, -1].topk(2).indices.tolist())
    assert set(out[:, 1].tolist()) == allowed  # both drawn in 64 tries, nothing else


def test_decoding_restores_the_mode():
    model = tiny().train()
    gpt.generate(model, torch.tensor([1]), 2)
    gpt.beam_search(model, torch.tensor([1]), 2)
    gpt.bits_per_char(model, torch.arange(20) % V, block_size=8)
    assert model.training
    with pytest.raises(ValueError, match="max_new_tokens"):
        gpt.generate(model, torch.tensor([1]), -1)
    with pytest.raises(ValueError, match="one prompt"):
        gpt.beam_search(model, torch.tensor([[1]]), 2)


def test_beam_search_with_one_beam_is_greedy():
    model = tiny(sharp=5.0)
    prompt = torch.tensor([4, 7])
    assert torch.equal(gpt.beam_search(model, prompt, 9, beams=1),
                       gpt.generate(model, prompt, 9, greedy=True))


@pytest.mark.parametrize("seed", range(4))
def test_beam_search_finds_a_continuation_at_least_as_likely_as_greedy(seed):
    model = tiny(seed, sharp=3.0)
    prompt = torch.tensor([seed % V, 1])
    greedy = gpt.generate(model, prompt, 6, greedy=True)
    beam = gpt.beam_search(model, prompt, 6, beams=4)
    assert beam.shape == greedy.shape and torch.equal(beam[:2], prompt)
    assert log_prob(model, beam, 2) >= log_prob(model, greedy, 2) - 1e-5


def test_exhaustive_beam_search_finds_the_most_likely_continuation():
    """With beams = V^(n-1) every prefix is kept: the search is exact. (On these seeded
    models greedy decoding misses the optimum at least once, so the check has teeth.)"""
    greedy_misses = 0
    for seed in range(3):
        model = tiny(seed, vocab_size=4, sharp=3.0)
        prompt = torch.tensor([2])
        every = [torch.cat([prompt, torch.tensor(c)]) for c in itertools.product(range(4), repeat=3)]
        best = max(every, key=lambda ids: log_prob(model, ids, 1))
        assert torch.equal(gpt.beam_search(model, prompt, 3, beams=16), best)  # 16 = 4^(3-1)
        greedy_misses += not torch.equal(gpt.generate(model, prompt, 3, greedy=True), best)
    assert greedy_misses > 0


# -- bits per character -------------------------------------------------------------

def test_untrained_model_scores_about_log2_of_the_vocabulary():
    model = tiny(vocab_size=65, block_size=16)
    ids = torch.randint(0, 65, (2000,), generator=torch.Generator().manual_seed(0))
    assert abs(gpt.bits_per_char(model, ids, block_size=16) - math.log2(65)) < 0.05


def test_bits_per_char_is_the_cross_entropy_of_non_overlapping_windows():
    model = tiny(sharp=4.0)
    ids = torch.randint(0, V, (50,), generator=torch.Generator().manual_seed(1))
    x, y = ids[:48].view(6, 8), ids[1:49].view(6, 8)  # (50 - 1) // 8 = 6 windows
    with torch.no_grad():
        nats = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    assert gpt.bits_per_char(model, ids, block_size=8, batch_size=4) == \
        pytest.approx(float(nats) / math.log(2), rel=1e-5)
    with torch.no_grad():
        first = F.cross_entropy(model(x[:2]).flatten(0, 1), y[:2].flatten())
    assert gpt.bits_per_char(model, ids, block_size=8, max_windows=2) == \
        pytest.approx(float(first) / math.log(2), rel=1e-5)


def test_a_perfect_bigram_predictor_scores_zero():
    """Text 0 1 2 3 4 0 1 2 …: each character names the next. Blocks silenced (their
    output layers zeroed), one-hot embeddings, and a head that maps i to i + 1."""
    v = 5
    model = tiny(vocab_size=v)
    with torch.no_grad():
        for block in model.blocks:
            for layer in (block.attn.proj, block.mlp.proj):
                layer.weight.zero_()
                layer.bias.zero_()
        model.pos_emb.weight.zero_()
        model.tok_emb.weight.copy_(torch.eye(v, 16))
        model.head.weight.zero_()
        for i in range(v):
            model.head.weight[(i + 1) % v, i] = 30.0
    ids = torch.arange(200) % v
    assert gpt.bits_per_char(model, ids, block_size=8) < 1e-3
    assert gpt.generate(model, torch.tensor([3]), 4, greedy=True).tolist() == [3, 4, 0, 1, 2]


# -- a half-depth student initialised from the teacher (DistilBERT) ----------------------

def deep(n_layer: int = 4, seed: int = 0, dtype=torch.float32) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(V, 8, n_layer=n_layer, n_head=2, n_embd=16)).to(dtype).eval()


def test_student_from_teacher_keeps_every_other_block_by_default():
    teacher = deep(4)
    student = gpt.student_from_teacher(teacher)
    assert student.config == GPTConfig(V, 8, n_layer=2, n_head=2, n_embd=16)
    assert student.training
    t, s = teacher.state_dict(), student.state_dict()
    for key, value in s.items():
        if key.startswith("blocks."):
            _, i, rest = key.split(".", 2)
            assert torch.equal(value, t[f"blocks.{2 * int(i)}.{rest}"]), key
        else:
            assert torch.equal(value, t[key]), key
    # An odd number of teacher blocks: 0, 2, 4.
    assert gpt.student_from_teacher(deep(5)).config.n_layer == 3


def test_student_from_teacher_computes_the_teacher_with_the_other_blocks_left_out():
    teacher = deep(4, seed=1)
    student = gpt.student_from_teacher(teacher, layers=[1, 3]).eval()
    idx = torch.randint(0, V, (3, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        x = teacher.tok_emb(idx) + teacher.pos_emb(torch.arange(8))
        for j in (1, 3):
            x = teacher.blocks[j](x)
        expected = teacher.head(teacher.ln_f(x))
        assert torch.allclose(student(idx), expected, atol=1e-6)


def test_student_from_teacher_owns_its_weights_and_follows_the_teachers_dtype():
    teacher = deep(4, dtype=torch.float64)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    state = torch.get_rng_state()
    student = gpt.student_from_teacher(teacher, layers=(0, 3))
    assert torch.equal(state, torch.get_rng_state())  # the caller's random state untouched
    assert all(p.dtype == torch.float64 for p in student.parameters())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in before.items())
    assert not any(p.data_ptr() == q.data_ptr() for p in student.parameters()
                   for q in teacher.parameters())


@pytest.mark.parametrize("teacher, layers, error, match", [
    ("not a model", None, TypeError, "teacher must be a kdteach.gpt.GPT"),
    (None, [], ValueError, "increasing order"),
    (None, [0, 4], ValueError, "each in 0 … 3"),
    (None, [-1, 2], ValueError, "the teacher has 4 blocks"),
    (None, [2, 0], ValueError, "increasing order"),
    (None, [1, 1], ValueError, "distinct"),
    (None, [0.0, 2], TypeError, "must hold ints"),
    (None, [True, 2], TypeError, "must hold ints"),
    (None, 2, TypeError, "sequence of teacher block indices"),
    (None, "02", TypeError, "sequence of teacher block indices"),
])
def test_student_from_teacher_bad_input(teacher, layers, error, match):
    with pytest.raises(error, match=match):
        gpt.student_from_teacher(deep(4) if teacher is None else teacher, layers)
