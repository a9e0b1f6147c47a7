"""A small character-level GPT: the teacher and student of the language-model part.

A decoder-only Transformer (Vaswani et al. 2017, "Attention is all you need") in the
GPT-2 arrangement (Radford et al. 2019, "Language models are unsupervised multitask
learners", section 2.3): each block normalises *before* its sub-layer and adds the result
back to the residual stream ("pre-norm"), and a last LayerNorm precedes the output layer.

    idx (B, L) ids ──tok_emb + pos_emb──▶ x (B, L, C)
        for each block:  x = x + attn(ln1(x))      causal: position t sees only ≤ t
                         x = x + mlp(ln2(x))       C → 4C → GELU → C
    ──ln_f──▶ head ──▶ logits (B, L, V)            logits[:, t] predict idx[:, t + 1]

Module names are stable (``tok_emb``, ``pos_emb``, ``blocks.0`` … ``blocks.{n-1}``,
``ln_f``, ``head``), the same in teacher and student, so feature distillation records
``blocks.N`` (its output, the residual stream, (B, L, C)) with
:func:`kdteach.features.record`.

:func:`student_from_teacher` builds a shallower GPT of the teacher's width from some of its
blocks (DistilBERT's initialisation, Sanh et al. 2019, section 3).

Also here: decoding — :func:`generate` (sampling with temperature and top-k, or greedy)
and :func:`beam_search` (the continuation of highest log-probability, for sequence-level
KD, Kim & Rush 2016) — and :func:`bits_per_char`, the usual measure of a character model.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import numbers
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from . import checks
from .models import device_of
from .text import check_ids


@dataclass(frozen=True)
class GPTConfig:
    """The sizes of a :class:`GPT`. ``block_size`` is the longest input it reads (its
    number of learned positions); ``n_embd`` (C) must divide into ``n_head`` heads."""

    vocab_size: int
    block_size: int
    n_layer: int
    n_head: int
    n_embd: int
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            checks.positive_int(getattr(self, name), name)
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be a multiple of n_head={self.n_head} "
                             "(each head gets n_embd // n_head channels).")
        if not checks.is_real(self.dropout) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")


def teacher_config(vocab_size: int, block_size: int = 64) -> GPTConfig:
    """The teacher: 4 blocks, 4 heads, 96 channels (about 0.46 M parameters for 65
    characters). Sized for the CPU quick profile; tentative until the notebooks are tuned."""
    return GPTConfig(vocab_size, block_size, n_layer=4, n_head=4, n_embd=96)


def student_config(vocab_size: int, block_size: int = 64) -> GPTConfig:
    """The student: 2 blocks, 2 heads, 40 channels (about 47 k parameters, ~1/10 of the
    teacher; each student block stands for two teacher blocks). Tentative, like the teacher."""
    return GPTConfig(vocab_size, block_size, n_layer=2, n_head=2, n_embd=40)


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position t attends to positions ≤ t only."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # queries, keys, values in one matmul
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)  # back into the residual stream
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, l, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)  # 3 × (B, L, C)
        # (B, L, C) -> (B, H, L, D), D = C / H: each head attends on its own channels.
        q, k, v = (t.view(b, l, self.n_head, c // self.n_head).transpose(1, 2) for t in (q, k, v))
        # softmax(q kᵀ / √D + causal mask) v, fused (and memory-efficient on a GPU).
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.dropout if self.training else 0.0)
        y = y.transpose(1, 2).reshape(b, l, c)  # (B, H, L, D) -> (B, L, C): heads side by side
        return self.drop(self.proj(y))


class FeedForward(nn.Module):
    """The position-wise MLP: C → 4C → GELU → C (GPT-2's widths and activation)."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.gelu = nn.GELU()
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(self.gelu(self.fc(x))))  # (B, L, C)


class Block(nn.Module):
    """A pre-norm Transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = FeedForward(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))  # (B, L, C)
        return x + self.mlp(self.ln2(x))  # (B, L, C)


class GPT(nn.Module):
    """A character-level GPT; ``model(idx)`` maps ids (B, L) to next-token logits (B, L, V).

    The output layer ``head`` is *not* tied to the token embedding. GPT-2 ties them to save
    parameters: with 50,257 tokens the table is a third of the small model. With 65
    characters it is 65 × C numbers, ~1 % of these models, so tying saves nothing worth
    having, and untied the logits are one plain ``Linear`` of the last features that a
    distillation loss can reason about without the embedding moving under it.
    """

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT takes a GPTConfig, got {type(cfg).__name__}; build one with "
                            "gpt.teacher_config(vocab_size) or GPTConfig(...).")
        self.config = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)  # what each character is
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)  # where it stands (learned)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        # GPT-2 (section 2.3) scales the layers that write into the residual stream by
        # 1/√(number of residual additions), so the stream's variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if not isinstance(idx, torch.Tensor) or idx.dim() != 2:
            shape = tuple(idx.shape) if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"GPT takes a (batch, length) tensor of token ids, got {shape}; "
                             "add a batch dimension with idx[None].")
        b, l = idx.shape
        if l > self.config.block_size:
            raise ValueError(f"the input has {l} positions but this GPT's block_size is "
                             f"{self.config.block_size}; crop it to the last block_size tokens "
                             "(idx[:, -block_size:]), as generate() does.")
        pos = torch.arange(l, device=idx.device)  # (L,)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))  # (B, L, C)
        for block in self.blocks:
            x = block(x)  # (B, L, C)
        return self.head(self.ln_f(x))  # (B, L, V)


def student_from_teacher(teacher: GPT, layers=None) -> GPT:
    """A shallower GPT of the teacher's width, initialised from some of the teacher's blocks.

    DistilBERT (Sanh et al. 2019, section 3) keeps the teacher's width, halves its depth and
    initialises the student "from the teacher by taking one layer out of two". Here
    ``layers`` are the teacher's block indices to keep, in increasing order (default: every
    other one, ``0, 2, 4, …``); student block ``i`` starts as a copy of teacher block
    ``layers[i]``, and the embeddings, the last LayerNorm and the output layer are copied as
    they are. The student owns its tensors (training it never changes the teacher), lives
    on the teacher's device in its dtype, is returned in ``train()`` mode, and building it
    leaves the caller's random state as it was.
    """
    if not isinstance(teacher, GPT):
        raise TypeError(f"teacher must be a kdteach.gpt.GPT, got {type(teacher).__name__}.")
    n = teacher.config.n_layer
    if layers is None:
        layers = range(0, n, 2)
    if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
        raise TypeError(f"layers must be a sequence of teacher block indices such as (0, 2), "
                        f"got {layers!r}.")
    layers = list(layers)
    if any(isinstance(i, bool) or not isinstance(i, numbers.Integral) for i in layers):
        raise TypeError(f"layers must hold ints (teacher block indices), got {layers!r}.")
    layers = [int(i) for i in layers]
    if not layers or any(not 0 <= i < n for i in layers) or any(
            a >= b for a, b in zip(layers, layers[1:])):
        raise ValueError(f"layers must be distinct teacher block indices in increasing order, "
                         f"each in 0 … {n - 1} (the teacher has {n} blocks), got {layers}; "
                         f"e.g. layers={list(range(0, n, 2))} keeps every other block.")
    source = teacher.state_dict()
    state = {k: v for k, v in source.items() if not k.startswith("blocks.")}
    for i, j in enumerate(layers):
        prefix = f"blocks.{j}."
        state.update({f"blocks.{i}.{k[len(prefix):]}": v for k, v in source.items()
                      if k.startswith(prefix)})
    cfg = dataclasses.replace(teacher.config, n_layer=len(layers))
    weight = next(teacher.parameters())
    with torch.random.fork_rng(devices=[]):  # GPT() draws random weights we overwrite at once
        student = GPT(cfg).to(device=weight.device, dtype=weight.dtype)
    student.load_state_dict(state)  # copies the values into the student's own tensors
    return student


# ---------------------------------------------------------------------------------------
# Decoding and measuring: the model in eval() under no_grad, its mode restored after
# ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _evaluating(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _block_size(model: nn.Module) -> int:
    cfg = getattr(model, "config", None)
    if not isinstance(cfg, GPTConfig):
        raise TypeError(f"model must be a kdteach.gpt.GPT (with a .config), got "
                        f"{type(model).__name__}.")
    return cfg.block_size


def _prompt(prompt_ids, device) -> tuple[torch.Tensor, bool]:
    """The prompt as a (B, T) long tensor on ``device``, and whether it was 1-D."""
    ids = torch.as_tensor(prompt_ids, dtype=torch.long)
    if ids.dim() not in (1, 2) or ids.shape[-1] == 0:
        raise ValueError(f"prompt_ids must be a non-empty sequence of ids (T,) or a batch "
                         f"(B, T), got shape {tuple(ids.shape)}.")
    return ids.to(device).view(-1, ids.shape[-1]), ids.dim() == 1


def _next_logits(model: nn.Module, ids: torch.Tensor, block_size: int) -> torch.Tensor:
    """The logits (B, V) of the token after ``ids`` (B, T), reading at most the last
    ``block_size`` tokens (the model has no positions beyond)."""
    return model(ids[:, -block_size:])[:, -1, :].float()


def generate(model: nn.Module, prompt_ids, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, greedy: bool = False,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The prompt followed by ``max_new_tokens`` generated ids, one at a time.

    ``prompt_ids`` is one sequence (T,) or a batch (B, T); the result has the same number
    of dimensions. Each step reads the last ``block_size`` tokens and either takes the most
    likely next token (``greedy=True``) or samples from ``softmax(logits / temperature)``
    restricted to the ``top_k`` most likely tokens (all of them when ``None``).
    ``generator`` makes sampling reproducible (on any device: the probabilities are moved
    to the generator's device to draw).
    """
    checks.model(model, "model")
    block_size = _block_size(model)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}.")
    temperature = checks.positive_number(temperature, "temperature", "temperature=0.8")
    if top_k is not None:
        top_k = checks.positive_int(top_k, "top_k", "tokens to sample from")
    ids, one_d = _prompt(prompt_ids, device_of(model))  # (B, T)
    with _evaluating(model):
        for _ in range(max_new_tokens):
            logits = _next_logits(model, ids, block_size)  # (B, V)
            if greedy:
                nxt = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
            else:
                logits = logits / temperature
                if top_k is not None and top_k < logits.shape[-1]:
                    kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1) the k-th largest
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probs = F.softmax(logits, dim=-1)  # (B, V)
                where = generator.device if generator is not None else probs.device
                nxt = torch.multinomial(probs.to(where), 1, generator=generator).to(ids.device)
            ids = torch.cat([ids, nxt], dim=1)  # (B, T + 1)
    return ids[0] if one_d else ids


def beam_search(model: nn.Module, prompt_ids, max_new_tokens: int, *,
                beams: int = 4) -> torch.Tensor:
    """The prompt (T,) followed by the ``max_new_tokens`` ids found to be most likely.

    Keeps the ``beams`` continuations of highest total log-probability: each step extends
    every one by every token and keeps the best ``beams`` of those. With ``beams=1`` this
    is greedy decoding. It is a heuristic: it usually finds a continuation more likely than
    greedy's, but only an exhaustive search (``beams`` ≥ V^(max_new_tokens − 1)) is sure to
    find the most likely one. Scores use the same context as :func:`generate` (the last
    ``block_size`` tokens). Kim & Rush (2016) train a student on the teacher's beam-search
    outputs: sequence-level knowledge distillation.
    """
    checks.model(model, "model")
    block_size = _block_size(model)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}.")
    beams = checks.positive_int(beams, "beams")
    ids, one_d = _prompt(prompt_ids, device_of(model))  # (1, T)
    if not one_d:
        raise ValueError("beam_search decodes one prompt at a time; pass a 1-D tensor of ids.")
    scores = torch.zeros(1, device=ids.device)  # (K,) total log-probability of each beam
    with _evaluating(model):
        for _ in range(max_new_tokens):
            logp = F.log_softmax(_next_logits(model, ids, block_size), dim=-1)  # (K, V)
            total = (scores[:, None] + logp).flatten()  # (K * V,) every one-token extension
            scores, best = total.topk(min(beams, total.numel()))  # (K',) sorted, best first
            vocab = logp.shape[-1]
            ids = torch.cat([ids[best // vocab], (best % vocab)[:, None]], dim=1)  # (K', T + 1)
    return ids[0]


def bits_per_char(model: nn.Module, ids: torch.Tensor, *, block_size: int,
                  batch_size: int = 64, max_windows: int | None = None) -> float:
    """The model's mean next-character cross-entropy on ``ids``, in bits (nats / ln 2).

    ``ids`` (N,) is cut into non-overlapping windows of ``block_size`` (the last
    ``(N - 1) % block_size`` characters are left out), the first ``max_windows`` of them if
    given; every position of every window is scored, so early positions are predicted from
    a short context (a sliding window would score a little better). Runs in ``eval()``
    without gradients, restoring the mode; reads the device once, at the end. A model that
    guesses uniformly among V characters scores log2(V) (6.02 bits for 65); 0 is perfect.
    """
    checks.model(model, "model")
    ids = check_ids(ids)
    block_size = checks.positive_int(block_size, "block_size")
    batch_size = checks.positive_int(batch_size, "batch_size")
    n_windows = (len(ids) - 1) // block_size
    if max_windows is not None:
        n_windows = min(n_windows, checks.positive_int(max_windows, "max_windows"))
    if n_windows == 0:
        raise ValueError(f"ids has {len(ids)} tokens: too few for one window of block_size="
                         f"{block_size} plus its next token.")
    device = device_of(model)
    ids = ids.to(device)
    offsets = torch.arange(block_size, device=device)  # (L,)
    total = torch.zeros((), dtype=torch.float64, device=device)
    with _evaluating(model):
        for first in range(0, n_windows, batch_size):
            starts = torch.arange(first, min(first + batch_size, n_windows), device=device)
            pos = starts[:, None] * block_size + offsets  # (B, L)
            logits = model(ids[pos]).float()  # (B, L, V)
            total += F.cross_entropy(logits.flatten(0, 1), ids[pos + 1].flatten(),
                                     reduction="sum").double()
    return float(total) / (n_windows * block_size) / math.log(2)
