"""Distillation without a pre-trained teacher: peers that teach each other, and networks
that teach their own next generation.

* :func:`mutual_learning` — deep mutual learning (Zhang, Xiang, Hospedales & Lu 2018,
  "Deep Mutual Learning", CVPR 2018): a cohort of K untrained networks, each trained on
  the labels *and* on its peers' current predictions,

      L_k = CE(y, p_k) + 1/(K-1) * sum_{l != k} KL(p_l || p_k)        (Sec. 3.1, 3.3)

  (:func:`kdteach.losses.dml_loss`), the networks updated **in turn** within each batch as
  in the paper's Algorithm 1: update θ_1 with L_1, recompute p_1, update θ_2 with L_2, …
* :func:`born_again` — born-again networks (Furlanello, Lipton, Tschannen, Itti &
  Anandkumar 2018, "Born-Again Neural Networks", ICML 2018): generation 0 is trained on
  the labels; generation k, a fresh network of the *same* architecture, is distilled from
  generation k-1 (Sec. 3); the averaged predictions of generations 1 … k form a born-again
  ensemble, BANE (Sec. 3.1):  f^k(x) = 1/k * sum_{i=1..k} f(x, θ_i) — the label-trained
  generation 0 is not a member.
* :class:`Ensemble` — averages the predictions of several models; usable wherever a model
  is (as a teacher for :func:`kdteach.train.distill`, or in :func:`kdteach.train.evaluate`).

Both training functions reuse :mod:`kdteach.train`: born-again generations are plain
:func:`~kdteach.train.fit` / :func:`~kdteach.train.distill` runs, and mutual learning drives
the same epoch loop (:func:`~kdteach.train.run_epochs`) with a step that updates the peers
in turn.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, config, losses, train


class Ensemble(nn.Module):
    """The averaged prediction of ``members``, returned as logits.

    ``average="probs"`` (default): the arithmetic mean of the members' probabilities,
    returned as its logarithm, ``log(1/K * sum_k softmax(z_k))`` — a valid set of logits
    (softmax gives the mean back), so ``train.evaluate`` and ``train.distill`` accept it.
    ``average="logits"``: the mean of the logits, ``1/K * sum_k z_k``; its softmax at any
    temperature T is the normalised *geometric* mean of the members' softmax(z_k / T).
    Hinton et al. (2015, Sec. 1) use either mean as an ensemble's soft targets.
    """

    def __init__(self, members: Sequence[nn.Module], average: str = "probs"):
        super().__init__()
        if len(members) == 0:
            raise ValueError("members is empty; pass at least one model.")
        if average not in ("probs", "logits"):
            raise ValueError(f"average={average!r} is unknown; use 'probs' or 'logits'.")
        self.members = nn.ModuleList(members)
        self.average = average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.combine(torch.stack([m(x).float() for m in self.members]), self.average)

    @staticmethod
    def combine(logits: torch.Tensor, average: str = "probs") -> torch.Tensor:
        """The ensemble's logits from its members' stacked logits (K, B, C) — for members
        whose predictions were already computed (e.g. with ``train.predict``)."""
        if average == "logits":
            return logits.mean(0)
        # log of the mean probability, computed stably as logsumexp(log p_k) - log K
        return torch.logsumexp(F.log_softmax(logits, dim=-1), dim=0) - math.log(len(logits))


def mutual_learning(peers: Sequence[nn.Module], data, *, epochs: int = 5, lr: float = 1e-3,
                    batch_size: int = 128, optimizer: str = "adam", weight_decay: float = 0.0,
                    schedule: str | None = "cosine", jitter: int = 0, eval_data=None,
                    seed: int = 0, in_turn: bool = True, device=None, amp: bool | None = None,
                    progress: bool | None = None) -> list[train.History]:
    """Train a cohort of ``peers`` by deep mutual learning; return one History per peer.

    Every peer sees the same batches. For each batch (Zhang et al. 2018, Algorithm 1):

    1. every peer predicts (one forward pass each);
    2. for k = 1 … K: peer k takes one optimiser step on
       ``dml_loss(z_k, [other peers' latest logits], y)`` — the peers' logits are
       detached targets — and, with ``in_turn=True``, predicts the batch again with its
       new weights, so the peers after it learn from its updated prediction.

    ``in_turn=False`` skips the re-prediction: every peer then learns from the
    predictions made at the start of the step (a simultaneous update, one forward pass
    fewer per peer). The re-prediction runs in train mode, so a BatchNorm layer's running
    averages see that batch twice (negligible: they are averages over many batches).

    Each peer has its own optimiser and learning-rate schedule (same settings for all).
    The step below updates all of them and records one loss and one accuracy per peer;
    :func:`kdteach.train.run_epochs` draws the batches and keeps the records. Each History
    has ``train_loss``, ``train_acc`` (on the training batches, before each update) and
    ``eval_acc`` (on ``eval_data``, after every epoch) for that peer.
    """
    peers = [checks.model(p, "peer") for p in peers]
    if len(peers) < 2:
        raise ValueError(f"mutual learning needs at least 2 peers, got {len(peers)}.")
    if len({id(p) for p in peers}) != len(peers):
        raise ValueError("the same model appears twice in peers; build a separate model per peer.")
    epochs, lr = train.check_run(epochs=epochs, lr=lr, seed=seed)
    torch.manual_seed(seed)  # dropout masks; the loader has its own seeded generator
    loader = train.loader_for(data, batch_size=batch_size, seed=seed, jitter=jitter, device=device)
    device = loader.device
    for p in peers:
        p.to(device)
    opts = [train.make_optimizer(p.parameters(), optimizer, lr, weight_decay, device)
            for p in peers]
    K = len(peers)

    def step(x, y, idx):
        with train.autocast(device, amp):
            logits = [p(x).float() for p in peers]
        latest = [z.detach() for z in logits]  # what each peer currently predicts
        loss_sums, correct = [], []
        for k in range(K):
            loss = losses.dml_loss(logits[k], latest[:k] + latest[k + 1:], y)
            loss_sums.append(loss.detach() * len(y))
            correct.append((latest[k].argmax(1) == y).sum())
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
            if in_turn and k < K - 1:  # Algorithm 1: recompute p_k before the next peer's update
                with torch.no_grad(), train.autocast(device, amp):
                    latest[k] = peers[k](x).float()
        return {"loss": torch.stack(loss_sums), "acc": torch.stack(correct)}

    def evaluate() -> dict:
        if eval_data is None:
            return {"eval_acc": [None] * K}
        return {"eval_acc": [train.evaluate(p, eval_data, device=device).accuracy for p in peers]}

    cohort = train.run_epochs(step, loader, epochs=epochs, modules=peers,
                              schedulers=[train.make_scheduler(o, schedule, epochs) for o in opts],
                              evaluate=evaluate, progress=progress,
                              desc=f"mutual learning, {K} peers")
    histories = [train.History() for _ in peers]
    for row in cohort.records:
        for k, history in enumerate(histories):
            history.append(epoch=row["epoch"], train_loss=row["train_loss"][k],
                           train_acc=row["train_acc"][k], eval_acc=row["eval_acc"][k],
                           seconds=row["seconds"])
    return histories


def born_again(build: Callable[[], nn.Module], data, *, generations: int = 2,
               teacher: nn.Module | None = None, T: float = 1.0, alpha: float = 0.0,
               epochs: int = 5, seed: int = 0, eval_data=None, **train_kwargs):
    """Born-again networks: ``[model_0, model_1, …, model_G]`` and their Histories.

    ``model_0`` is ``teacher`` if given (its History is then empty), else ``build()``
    trained on the labels with :func:`kdteach.train.fit`. For g = 1 … ``generations``,
    ``model_g = build()`` (same architecture, fresh initialisation) is distilled from
    ``model_{g-1}`` with :func:`kdteach.train.distill` and Hinton's loss
    ``alpha * CE + (1 - alpha) * T^2 * KL`` — by default ``T = 1, alpha = 0``: match the
    teacher's ordinary softmax output and nothing else, the born-again objective of
    Furlanello et al. (2018, Sec. 3). Generation g is built after
    ``config.seed_everything(seed + g)`` and trained with ``seed + g`` (new batches).
    ``train_kwargs`` (``lr``, ``batch_size``, …) go to every ``fit`` / ``distill`` call.

    The paper's born-again ensemble of generations 1 … k is ``Ensemble(models[1:k + 1])``:
    generation 0, ``models[0]``, is not a member of it.
    """
    generations = checks.positive_int(generations, "generations")
    models, histories = [], []
    if teacher is None:
        config.seed_everything(seed)
        model = build()
        histories.append(train.fit(model, data, epochs=epochs, seed=seed, eval_data=eval_data,
                                   **train_kwargs))
    else:
        model = teacher
        histories.append(train.History())
    models.append(model.eval())
    for g in range(1, generations + 1):
        config.seed_everything(seed + g)
        student = build()
        histories.append(train.distill(student, models[-1], data, T=T, alpha=alpha,
                                       epochs=epochs, seed=seed + g, eval_data=eval_data,
                                       **train_kwargs))
        models.append(student.eval())
    return models, histories
