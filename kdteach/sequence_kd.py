"""Batch sources for distilling a language model on whole sequences (notebook 11).

Token-level KD shows the student the teacher's next-character distribution at every
position of the *data*. Two other ways to distil a language model change the text the
student reads, not the loop it trains in; each is a batch source for
:func:`kdteach.train.fit` / :func:`kdteach.train.distill` (an object with ``batches()``
yielding ``(x, y, idx)`` and a ``device``):

* :class:`SequenceSource` — sequence-level KD (Kim & Rush 2016, section 3.2): the student
  is trained with the ordinary next-character loss on text the *teacher wrote*
  (its beam-search or sampled continuations of data prompts, made once by
  :func:`teacher_continuations`), instead of on the data.
* :class:`OnPolicySource` — on-policy distillation (GKD, Agarwal et al. 2024, section 3,
  Algorithm 1): each batch, a fraction ``λ`` of the prompts is continued by the *current
  student* (sampled, no gradient), the rest keep the data's continuation; the teacher then
  scores every position of that text inside ``distill`` (it runs per batch for a batch
  source) and the loss compares the two distributions there. ``fraction=0`` is plain
  token-level KD on the data.

Every sequence is a prompt of ``prompt_len`` characters from the data followed by
``new_tokens`` continuation characters. ``y`` (the next character at each position) is set
to :data:`IGNORE` at the prompt positions, so a loss counts only the positions that predict
a continuation character (:func:`continuation_rows`); the same holds for cross-entropy,
which skips targets of ``-100``. The measures used to compare students are here too:
:func:`continuation_bpc` (bits per character on held-out continuations),
:func:`teacher_logprob` (how likely the teacher finds a text: quality),
:func:`distinct_ngrams` (diversity) and :func:`position_divergence` (the student–teacher
divergence on given text: on the data vs on the student's own samples, the exposure bias).
"""
from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, losses
from .gpt import generate
from .models import device_of
from .text import check_ids

#: The target at positions that do not count (the prompt): what ``F.cross_entropy`` skips.
IGNORE = -100


def _seed(seed, name="seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {seed!r}.")
    return int(seed)


def _lengths(prompt_len, new_tokens) -> tuple[int, int]:
    return (checks.positive_int(prompt_len, "prompt_len", "characters of prompt"),
            checks.positive_int(new_tokens, "new_tokens", "continuation characters"))


def prompts(ids: torch.Tensor, n: int, prompt_len: int, new_tokens: int, *, seed: int = 0,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` windows of ``prompt_len + new_tokens`` characters of ``ids`` at seeded random
    starts: (n, prompt_len + new_tokens), on ``ids``' device. The first ``prompt_len`` are
    the prompt; the rest is the data's own continuation."""
    ids = check_ids(ids)
    n = checks.positive_int(n, "n", "windows")
    prompt_len, new_tokens = _lengths(prompt_len, new_tokens)
    width = prompt_len + new_tokens
    if len(ids) <= width:
        raise ValueError(f"ids has {len(ids)} tokens, too few for windows of prompt_len + "
                         f"new_tokens = {width}; use shorter windows.")
    gen = generator if generator is not None else torch.Generator().manual_seed(_seed(seed))
    starts = torch.randint(0, len(ids) - width, (n,), generator=gen).to(ids.device)  # (n,)
    return ids[starts[:, None] + torch.arange(width, device=ids.device)]  # (n, P + K)


@torch.no_grad()
def beam_continuations(model: nn.Module, prompt_ids: torch.Tensor, new_tokens: int, *,
                       beams: int = 4) -> torch.Tensor:
    """Beam search for a batch of prompts at once: (B, P) -> (B, P + new_tokens).

    The same search as :func:`kdteach.gpt.beam_search` (keep the ``beams`` continuations of
    highest total log-probability, extend each by every character, keep the best
    ``beams``), run for every prompt of the batch in one forward pass per step.
    """
    checks.model(model, "model")
    beams = checks.positive_int(beams, "beams")
    new_tokens = checks.positive_int(new_tokens, "new_tokens")
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dim() != 2:
        raise ValueError("prompt_ids must be a (B, P) tensor of ids, one prompt per row.")
    block = model.config.block_size
    was_training = model.training
    model.eval()
    b, p = prompt_ids.shape
    ids = prompt_ids.to(device_of(model)).repeat_interleave(beams, dim=0)  # (B·K, P)
    scores = torch.full((b, beams), -math.inf, device=ids.device)  # (B, K)
    scores[:, 0] = 0.0  # one live beam per prompt at the start (the others are copies)
    rows = torch.arange(b, device=ids.device)[:, None] * beams  # (B, 1) first row of each prompt
    try:
        for _ in range(new_tokens):
            logp = F.log_softmax(model(ids[:, -block:])[:, -1].float(), dim=-1)  # (B·K, V)
            v = logp.shape[-1]
            total = (scores[..., None] + logp.view(b, beams, v)).view(b, beams * v)  # (B, K·V)
            scores, best = total.topk(beams, dim=-1)  # (B, K) best extensions, best first
            parent = (rows + best // v).flatten()  # (B·K,) the row each one extends
            ids = torch.cat([ids[parent], (best % v).reshape(-1, 1)], dim=1)  # (B·K, T + 1)
    finally:
        model.train(was_training)
    return ids.view(b, beams, -1)[:, 0]  # (B, P + K): the best beam of each prompt


@torch.no_grad()
def continue_text(model: nn.Module, prompt_ids: torch.Tensor, new_tokens: int, *,
                  mode: str = "sample", beams: int = 4, temperature: float = 1.0,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``model``'s continuations of the prompts (B, P): (B, P + new_tokens).

    ``mode``: ``"beam"`` (:func:`beam_continuations`), ``"greedy"`` (the likeliest
    character at each step) or ``"sample"`` (from ``softmax(logits / temperature)``)."""
    if mode == "beam":
        return beam_continuations(model, prompt_ids, new_tokens, beams=beams)
    if mode == "greedy":
        return generate(model, prompt_ids, new_tokens, greedy=True)
    if mode == "sample":
        return generate(model, prompt_ids, new_tokens, temperature=temperature,
                        generator=generator)
    raise ValueError(f"mode={mode!r} is unknown; use 'beam', 'greedy' or 'sample'.")


def teacher_continuations(teacher: nn.Module, ids: torch.Tensor, n: int, *, prompt_len: int,
                          new_tokens: int, mode: str = "beam", beams: int = 4,
                          temperature: float = 1.0, seed: int = 0,
                          chunk: int = 256) -> torch.Tensor:
    """The transfer set of sequence-level KD: ``n`` data prompts continued by the teacher.

    Returns (n, prompt_len + new_tokens): each row a prompt of the data (seeded starts)
    followed by the teacher's ``mode`` continuation (see :func:`continue_text`), made
    ``chunk`` prompts at a time. Kim & Rush (2016) use the beam's best output.
    """
    prompt_len, new_tokens = _lengths(prompt_len, new_tokens)
    gen = torch.Generator().manual_seed(_seed(seed))
    windows = prompts(ids, n, prompt_len, new_tokens, generator=gen)
    chunk = checks.positive_int(chunk, "chunk")
    out = [continue_text(teacher, w[:, :prompt_len], new_tokens, mode=mode, beams=beams,
                         temperature=temperature, generator=gen)
           for w in windows.split(chunk)]
    return torch.cat(out).to(ids.device)


def _with_ignored_prompt(seqs: torch.Tensor, prompt_len: int):
    """``x`` = every character but the last, ``y`` = the next one, :data:`IGNORE` where
    ``y`` is still part of the prompt (positions 0 … prompt_len − 2)."""
    x, y = seqs[:, :-1], seqs[:, 1:].clone()  # (B, P + K − 1) each
    y[:, :prompt_len - 1] = IGNORE
    return x, y


class SequenceSource:
    """A batch source over fixed sequences (n, prompt_len + new_tokens), e.g. the teacher's
    continuations from :func:`teacher_continuations`: ``batches()`` yields one epoch of
    ``(x, y, idx)`` in a seeded order (``x`` (B, P + K − 1), ``y`` the next characters with
    the prompt positions set to :data:`IGNORE`, ``idx`` the rows)."""

    def __init__(self, sequences: torch.Tensor, prompt_len: int, batch_size: int, *, seed: int = 0):
        if (not isinstance(sequences, torch.Tensor) or sequences.dim() != 2
                or sequences.is_floating_point()):
            raise TypeError("sequences must be an integer tensor (n, prompt_len + new_tokens), "
                            "e.g. from teacher_continuations.")
        self.prompt_len = checks.positive_int(prompt_len, "prompt_len")
        if sequences.shape[1] <= self.prompt_len:
            raise ValueError(f"sequences have {sequences.shape[1]} characters, not more than "
                             f"prompt_len={self.prompt_len}: there is no continuation to learn.")
        self.sequences = sequences
        self.batch_size = checks.positive_int(batch_size, "batch_size")
        self.seed, self.epoch = _seed(seed), 0
        self.device = sequences.device

    def __len__(self) -> int:
        return -(-len(self.sequences) // self.batch_size)

    def batches(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        order = torch.randperm(len(self.sequences), generator=gen).to(self.device)
        for idx in order.split(self.batch_size):
            x, y = _with_ignored_prompt(self.sequences[idx], self.prompt_len)
            yield x, y, idx


class OnPolicySource:
    """Each batch: ``batch_size`` data windows whose first ``round(fraction · batch_size)``
    continuations are replaced by the current ``student``'s own samples (GKD's Algorithm 1,
    with λ = ``fraction``).

    ``steps`` batches make an epoch; the windows come from a generator seeded with ``seed``
    and the epoch, the student's samples from one seeded with ``seed`` (so two runs with the
    same seed and the same student see the same text). The student samples in ``eval()``
    without gradient (its mode is restored): the text is data for this step, as in GKD,
    where no gradient flows through the sampling. ``fraction=0`` never generates: token-level
    KD on the data's windows, in the same layout.

    Yields ``(x, y, starts)`` like :class:`SequenceSource`; for a generated row ``y`` holds
    the student's own next characters, which a divergence loss does not use (it compares the
    teacher's and the student's distributions at each counted position).
    """

    def __init__(self, ids: torch.Tensor, student: nn.Module, *, prompt_len: int,
                 new_tokens: int, batch_size: int, steps: int, fraction: float = 1.0,
                 temperature: float = 1.0, seed: int = 0):
        self.ids = check_ids(ids)
        self.student = checks.model(student, "student")
        self.prompt_len, self.new_tokens = _lengths(prompt_len, new_tokens)
        self.batch_size = checks.positive_int(batch_size, "batch_size")
        self.steps = checks.positive_int(steps, "steps", "batches per epoch")
        self.fraction = checks.fraction(fraction, "fraction")
        self.temperature = checks.positive_number(temperature, "temperature")
        self.seed, self.epoch = _seed(seed), 0
        self.device = self.ids.device
        self.n_generated = round(self.fraction * self.batch_size)
        self.sampler = torch.Generator(device=self.device).manual_seed(self.seed + 7919)

    def __len__(self) -> int:
        return self.steps

    def batches(self):
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        k = self.n_generated
        for _ in range(self.steps):
            seqs = prompts(self.ids, self.batch_size, self.prompt_len, self.new_tokens,
                           generator=gen)  # (B, P + K) data
            if k:
                own = generate(self.student, seqs[:k, :self.prompt_len], self.new_tokens,
                               temperature=self.temperature, generator=self.sampler)
                seqs = torch.cat([own.to(seqs.device), seqs[k:]])  # student's rows first
            x, y = _with_ignored_prompt(seqs, self.prompt_len)
            yield x, y, torch.arange(len(seqs), device=self.device)


def continuation_rows(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The rows of ``logits`` (B, L, V) at the positions that count — where ``targets``
    (B, L) is not :data:`IGNORE` — as (N, V), ready for the losses of :mod:`kdteach.losses`."""
    if logits.dim() != 3 or targets.shape != logits.shape[:2]:
        raise ValueError(f"logits must be (B, L, V) and targets (B, L), got "
                         f"{tuple(logits.shape)} and {tuple(targets.shape)}.")
    return logits.flatten(0, 1)[targets.flatten() != IGNORE]


#: The divergences a :func:`sequence_loss` may use.
DIVERGENCES = ("forward", "reverse", "jsd")


def sequence_loss(divergence: str = "forward", *, beta: float = 0.5, T: float = 1.0):
    """A loss for :func:`kdteach.train.distill`: the ``divergence`` between the teacher's and
    the student's next-character distributions, averaged over the counted positions
    (:func:`continuation_rows`). ``"forward"`` is KL(p_t ‖ p_s) (``kd_loss``'s soft term),
    ``"reverse"`` KL(p_s ‖ p_t), ``"jsd"`` the generalized JSD with ``beta``."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r} is unknown; use one of {DIVERGENCES}.")

    def loss(o) -> torch.Tensor:
        s = continuation_rows(o.student_logits, o.targets)
        t = continuation_rows(o.teacher_logits, o.targets)
        if divergence == "forward":
            return losses.generalized_jsd(s, t, beta=0.0, T=T)
        if divergence == "reverse":
            return losses.reverse_kl(s, t, T=T)
        return losses.generalized_jsd(s, t, beta=beta, T=T)

    loss.__name__ = f"{divergence}_loss"
    return loss


def continuation_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the counted positions: a loss for :func:`kdteach.train.fit` on a
    :class:`SequenceSource` or an :class:`OnPolicySource` (``fraction=0``)."""
    return F.cross_entropy(continuation_rows(logits, targets), targets[targets != IGNORE])


# ---------------------------------------------------------------------------------------
# Measures
# ---------------------------------------------------------------------------------------

@torch.no_grad()
def _logits(model, x):
    was_training = model.training
    model.eval()
    try:
        return model(x).float()
    finally:
        model.train(was_training)


def teacher_logprob(teacher: nn.Module, sequences: torch.Tensor, prompt_len: int) -> float:
    """The teacher's mean log-probability per continuation character of ``sequences``
    (n, P + K), in bits (≤ 0; nearer 0 = text the teacher finds likelier): the quality
    of a text as the teacher judges it."""
    prompt_len = checks.positive_int(prompt_len, "prompt_len")
    x, y = _with_ignored_prompt(sequences.to(device_of(teacher)), prompt_len)
    logp = F.log_softmax(_logits(teacher, x), dim=-1)  # (n, L, V)
    picked = logp.gather(-1, y.clamp_min(0)[..., None])[..., 0]  # (n, L)
    return float(picked[y != IGNORE].mean()) / math.log(2)


def distinct_ngrams(sequences: torch.Tensor, prompt_len: int, n: int = 3) -> float:
    """The share of distinct ``n``-grams among all ``n``-grams of the continuations (1 = no
    repeats anywhere; a model that keeps writing the same phrase scores low): diversity."""
    prompt_len = checks.positive_int(prompt_len, "prompt_len")
    n = checks.positive_int(n, "n")
    cont = sequences[:, prompt_len:].cpu()
    if cont.shape[1] < n:
        raise ValueError(f"continuations have {cont.shape[1]} characters, fewer than n={n}.")
    grams = cont.unfold(1, n, 1).reshape(-1, n)  # (rows · (K − n + 1), n)
    return len({tuple(g) for g in grams.tolist()}) / len(grams)


def continuation_bpc(model: nn.Module, sequences: torch.Tensor, prompt_len: int) -> float:
    """The model's cross-entropy in bits per character on the continuation positions of
    ``sequences`` (e.g. held-out data windows from :func:`prompts`)."""
    prompt_len = checks.positive_int(prompt_len, "prompt_len")
    x, y = _with_ignored_prompt(sequences.to(device_of(model)), prompt_len)
    return float(continuation_loss(_logits(model, x), y)) / math.log(2)


def position_divergence(student: nn.Module, teacher: nn.Module, sequences: torch.Tensor,
                        prompt_len: int, divergence: str = "forward", *,
                        beta: float = 0.5) -> float:
    """The mean per-position divergence between teacher and student on the continuation
    positions of ``sequences``, in bits: ``"forward"`` KL(p_t ‖ p_s), ``"reverse"``
    KL(p_s ‖ p_t), ``"jsd"`` the generalized JSD with ``beta``. Given data windows it
    measures the student where training put it; given the student's own samples, where
    generation takes it (exposure bias)."""
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence={divergence!r} is unknown; use one of {DIVERGENCES}.")
    prompt_len = checks.positive_int(prompt_len, "prompt_len")
    x, y = _with_ignored_prompt(sequences.to(device_of(student)), prompt_len)
    s = continuation_rows(_logits(student, x), y)
    t = continuation_rows(_logits(teacher, x), y)
    beta = {"forward": 0.0, "reverse": 1.0}.get(divergence, beta)
    return float(losses.generalized_jsd(s, t, beta=beta)) / math.log(2)
