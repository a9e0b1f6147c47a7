"""Knowledge-distillation losses, one short function each.

Read this file from top to bottom; every loss is a few lines of plain torch.

Conventions shared by every function here:

* the student's tensor comes first, the teacher's (or peers') second;
* no gradient ever flows into the teacher or the peers: their side is detached,
  or computed under ``torch.no_grad()``;
* the arithmetic runs in float32 (half and bfloat16 inputs are upcast, float64
  stays float64), so the losses are safe to call inside ``torch.autocast``;
* each loss returns a 0-d tensor;
* each docstring ends with the range of inputs the function supports: there,
  its value and its gradient are finite (the tests check it); a temperature or
  a power outside its range, or an empty feature tensor, raises ``ValueError``;
* bad inputs raise ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong
  value or shape) with a message that names the argument and says what to do.
  The checks live at the bottom of the file; skip them on a first reading.
  Two of them (NaN/inf values, labels out of range) must read the tensors'
  values, which on a GPU makes the CPU wait for the GPU at every call; wrap a
  hot training loop's calls in ``with value_checks(False):`` to skip just those
  two there (the setting belongs to that block, that thread and that task only).

Papers (section and equation numbers are given in each docstring):

* Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in a Neural Network",
  arXiv:1503.02531.
* Romero et al. (2015), "FitNets: Hints for Thin Deep Nets", ICLR 2015.
* Zagoruyko & Komodakis (2017), "Paying More Attention to Attention", ICLR 2017.
* Zhang, Xiang, Hospedales & Lu (2018), "Deep Mutual Learning", CVPR 2018.
* Park, Kim, Lu & Cho (2019), "Relational Knowledge Distillation", CVPR 2019.
* Tung & Mori (2019), "Similarity-Preserving Knowledge Distillation", ICCV 2019.
* Szegedy et al. (2016), "Rethinking the Inception Architecture for Computer
  Vision", CVPR 2016.
* Gu, Dong, Wei & Huang (2024), "MiniLLM: Knowledge Distillation of Large
  Language Models", ICLR 2024.
* Agarwal et al. (2024), "On-Policy Distillation of Language Models: Learning
  from Self-Generated Mistakes" (GKD), ICLR 2024.
* Huszár (2015), "How (not) to Train your Generative Model: Scheduled Sampling,
  Likelihood, Adversary?", arXiv:1511.05101.
"""
from __future__ import annotations

import contextlib
import contextvars
import math

import torch
import torch.nn.functional as F

from . import checks

__all__ = [
    "softmax_t",
    "kd_loss",
    "reverse_kl",
    "generalized_jsd",
    "topk_kd_loss",
    "hint_loss",
    "attention_map",
    "at_loss",
    "rkd_distance_loss",
    "rkd_angle_loss",
    "sp_loss",
    "dml_loss",
    "label_smoothing_loss",
    "value_checks",
]

# Look inside the tensors for NaN/inf values and out-of-range labels? Shape, dtype
# and argument checks always run; only these two read tensor values (a host-device
# sync on a GPU). A context variable, not a module global: a `value_checks(False)`
# block in one thread or task never switches them off for another.
_VALUE_CHECKS: contextvars.ContextVar[bool] = contextvars.ContextVar("kdteach_value_checks",
                                                                      default=True)


@contextlib.contextmanager
def value_checks(enabled: bool):
    """Turn the NaN/inf and label-range checks on or off for the calls inside the block.

    ``with value_checks(False): loss = kd_loss(...)`` skips the two checks that read
    tensor values (on a GPU, each is a host-device sync). The setting is restored when
    the block ends, and other threads never see it. ``kdteach.train`` uses it only around
    its own built-in losses; a loss you pass to ``fit``/``distill`` stays checked unless
    you ask otherwise (``check_values=False``).
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be True or False, got {enabled!r}")
    token = _VALUE_CHECKS.set(enabled)
    try:
        yield
    finally:
        _VALUE_CHECKS.reset(token)


def value_checks_enabled() -> bool:
    """Whether the NaN/inf and label-range checks run here (see :func:`value_checks`)."""
    return _VALUE_CHECKS.get()


# ---------------------------------------------------------------------------
# 1. Responses: soft targets and the classic KD loss (Hinton et al., 2015)
# ---------------------------------------------------------------------------

def softmax_t(logits, T=1.0):
    """Softmax at temperature ``T`` over the last dimension.

    Hinton, Vinyals & Dean (2015), Sec. 2, eq. (1)::

        q_i = exp(z_i / T) / sum_j exp(z_j / T)

    ``T = 1`` is the ordinary softmax. A larger ``T`` gives a softer
    distribution that shows how the model ranks the wrong classes (the "dark
    knowledge"); as ``T -> 0`` it tends to the one-hot argmax and as
    ``T -> inf`` to the uniform distribution. ``torch.softmax`` subtracts the
    row maximum before exponentiating, so logits such as 1000 do not overflow.

    Range: ``1e-3 <= T <= 1e4``, as for ``kd_loss`` (a ``ValueError`` outside,
    where the result is practically the argmax or the uniform distribution
    anyway), and logits up to 1e30 in size.
    """
    _check_temperature(T)
    z = _float_tensor("logits", logits, min_dim=1)
    return torch.softmax(z / T, dim=-1)


def _kl_batchmean(p_logits, q_logits):
    """KL(softmax(p_logits) || softmax(q_logits)), summed over classes, averaged over rows.

    KL(p || q) = sum_k p_k (log p_k - log q_k). This is what
    ``F.kl_div(log_q, p, reduction="batchmean")`` computes. ``log_softmax``
    keeps both logarithms finite even where a probability underflows to 0.
    """
    log_p = F.log_softmax(p_logits, dim=-1)
    log_q = F.log_softmax(q_logits, dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1).mean()


def kd_loss(student_logits, teacher_logits, targets=None, *, T=4.0, alpha=0.5):
    """Hinton-style knowledge distillation: hard labels plus the teacher's soft targets.

    Hinton, Vinyals & Dean (2015), Sec. 2 (soft targets from eq. (1), and the
    remark that soft-target gradients scale as 1/T^2), Sec. 2.1 (eq. (2), the
    gradient ``(q_i - p_i) / T``)::

        loss = alpha * CE(s, y) + (1 - alpha) * T^2 * KL(softmax(t / T) || softmax(s / T))

    ``s`` (student) and ``t`` (teacher) are logits of shape (B, K), ``y`` holds
    B class indices. The KL term is summed over classes and averaged over the
    batch ("batchmean"); CE is averaged over the batch.

    Why ``T^2``: per sample, the gradient of the KL term with respect to a
    student logit is ``(q_i - p_i) / T``, and for large ``T`` the difference
    ``q_i - p_i`` itself shrinks like ``1 / T``. Without the factor the soft
    gradients would fade like ``1 / T^2``; with it, their size barely depends
    on ``T``, so ``alpha`` means the same thing whatever temperature you pick.

    Here ``alpha`` weights the *hard* (label) term; the paper recommends a
    small weight on it. With ``targets=None`` the function returns the soft
    term ``T^2 * KL`` alone and ``alpha`` plays no part (it is still checked).
    The teacher's logits are detached: no gradient reaches the teacher.

    Range: ``1e-3 <= T <= 1e4`` (a ``ValueError`` outside) and logits up to
    1e30 in size. Near the top of that range, float32 keeps the gradient but
    not the value: ``T^2 * KL`` is a difference of logarithms ~``1/T^2`` apart,
    so above ``T`` of about 1000 its float32 value loses digits (pass float64
    logits to print it); the gradient stays accurate to ~0.1% even at ``T = 1e4``.
    """
    _check_temperature(T)
    checks.fraction(alpha, "alpha")
    s = _logits("student_logits", student_logits)
    t = _logits("teacher_logits", teacher_logits).detach()
    _check_same_logits_shape("student_logits", s, "teacher_logits", t)

    soft = T**2 * _kl_batchmean(t / T, s / T)
    if targets is None:
        return soft
    y = _targets(targets, s)
    hard = F.cross_entropy(s, y)
    return alpha * hard + (1 - alpha) * soft


# ---------------------------------------------------------------------------
# 1b. Language models: which way round to measure the gap (reverse KL, generalized JSD)
# ---------------------------------------------------------------------------
# A language model is a classifier per position: at each position it outputs V logits
# for the next token. These losses take 2-D (N, V) logits, one row per position, and
# average over the rows. A notebook flattens its (B, L, V) logits with .flatten(0, 1)
# and keeps only the positions that count (e.g. logits.flatten(0, 1)[mask.flatten()]),
# so padding never enters the average and the loss does not grow with the length.

def reverse_kl(student_logits, teacher_logits, *, T=1.0):
    """Reverse KL: the student's distribution measured against the teacher's.

    Per row (position) ``n``, with ``p = softmax(logits / T)``::

        loss = T^2 * mean over n of KL(p_s || p_t),   KL(p_s || p_t) = sum_v p_s,v (log p_s,v - log p_t,v)

    ``kd_loss`` measures the other way round, ``KL(p_t || p_s)`` (the "forward"
    KL): it charges the student for every token the teacher likes and the
    student misses, so a student too small to copy the teacher spreads its
    mass over all of the teacher's modes ("mode-covering"). The reverse KL is
    an average under the *student's* distribution: it charges the student for
    putting mass where the teacher puts little, and costs nothing for a
    teacher mode the student ignores, so such a student tends to settle on
    one mode ("mode-seeking"). MiniLLM (Gu et al., 2024, Sec. 2.1) distils
    language models with the reverse KL for this reason, and GKD (Agarwal et
    al., 2024) uses it per position as the ``beta = 1`` end of
    ``generalized_jsd``.

    ``student_logits`` and ``teacher_logits`` are (N, V): one row of V logits
    per position. The factor ``T^2`` is the one in ``kd_loss`` (it keeps the
    gradient's size about independent of ``T``); divide by ``T**2`` to
    compare with an implementation that leaves it out. The teacher's logits
    are detached: no gradient reaches the teacher. ``log_softmax`` keeps both
    logarithms finite, and a token where ``p_s`` underflows to 0 contributes
    ``0 * (finite) = 0``, as ``p log p -> 0`` says it should.

    Range: ``1e-3 <= T <= 1e4`` (a ``ValueError`` outside) and logits up to
    1e30 in size, as for ``kd_loss`` (with the same loss of float32 digits in
    the value near ``T = 1e4``).
    """
    _check_temperature(T)
    s = _position_logits("student_logits", student_logits)
    t = _position_logits("teacher_logits", teacher_logits).detach()
    _check_same_positions(s, t)
    return T**2 * _kl_batchmean(s / T, t / T)


def generalized_jsd(student_logits, teacher_logits, *, beta=0.5, T=1.0):
    """Generalized Jensen-Shannon divergence between teacher and student, per position.

    Agarwal et al. (2024), GKD, Sec. 2 (the generalized JSD; Huszár, 2015,
    shows how it moves between the two KLs). With ``p = softmax(logits / T)``
    and the mixture ``m = beta * p_t + (1 - beta) * p_s``, per row (position)::

        JSD_beta = beta * KL(p_t || m) + (1 - beta) * KL(p_s || m)
        loss     = T^2 * mean over rows of JSD_beta          for 0 < beta < 1
        loss     = T^2 * mean of KL(p_t || p_s)  (forward KL, kd_loss's soft term)   at beta = 0
        loss     = T^2 * mean of KL(p_s || p_t)  (reverse_kl)                        at beta = 1

    ``beta = 0.5`` is the ordinary Jensen-Shannon divergence. This is GKD's
    convention for which side ``beta`` weights, and TRL's ``GKDTrainer`` uses
    the same one, endpoints included.

    The endpoints are special cases, not values of the formula. At
    ``beta = 0`` the formula gives ``m = p_s`` and ``JSD_0 = KL(p_s || p_s)
    = 0``, and at ``beta = 1`` it gives 0 as well: a loss that teaches
    nothing. What the formula does near the ends is to *behave like* the two
    KLs, scaled down. For small ``beta`` (expanding ``log(1 + x)`` to second
    order, with ``chi^2(p_t || p_s) = sum_v (p_t,v - p_s,v)^2 / p_s,v``)::

        JSD_beta / beta = KL(p_t || p_s) - (beta / 2) * chi^2(p_t || p_s) + O(beta^2)
                       -> KL(p_t || p_s)   as beta -> 0

    and its gradient divided by ``beta`` tends to the forward KL's gradient;
    mirror-wise, ``JSD_beta / (1 - beta) -> KL(p_s || p_t)`` as ``beta -> 1``.
    GKD, TRL's ``GKDTrainer`` and this function take the two ends to be those
    limits, the two KLs themselves, not the formula's 0. Mind the jump in
    *size* this leaves: ``beta = 1e-6`` gives about ``1e-6`` times the forward
    KL, ``beta = 0`` the forward KL itself. Inside ``(0, 1)`` the value is
    bounded, ``0 <= JSD_beta <= H(beta) = -beta log beta - (1 - beta)
    log(1 - beta) <= log 2``, reached when the two distributions share no
    token; the KLs at the ends are not bounded.

    Swapping the roles: ``JSD_beta(s, t) = JSD_{1-beta}(t, s)``.

    Numerics: with ``u = log(beta p_t) - log((1 - beta) p_s)``, the two parts
    of ``m`` compared, the logarithm of the mixture is a two-term logsumexp,
    ``log m = log((1 - beta) p_s) + softplus(u) = log(beta p_t) +
    softplus(-u)``, where ``softplus(x) = log(1 + e^x)``. We use it in that
    form, for ``log(m / p_s)`` and ``log(m / p_t)`` directly: for ``beta``
    near 0 or 1, ``log m - log p_s`` is tiny, and subtracting two float32
    logarithms of size ~1 to get it would keep few of its digits. No
    logarithm of 0 is ever taken, and where ``p_s`` or ``p_t`` underflows to
    0 its terms are ``0 * (finite) = 0``.

    ``student_logits`` and ``teacher_logits`` are (N, V), one row per
    position; ``T^2`` as in ``kd_loss``; the teacher's logits are detached.

    Range: ``0 <= beta <= 1`` (a ``ValueError`` outside), ``1e-3 <= T <=
    1e4`` and logits up to 1e30 in size, as for ``kd_loss``.
    """
    beta = _check_beta(beta)
    _check_temperature(T)
    s = _position_logits("student_logits", student_logits)
    t = _position_logits("teacher_logits", teacher_logits).detach()
    _check_same_positions(s, t)
    if beta == 0:  # the limit of JSD_beta / beta: the forward KL, kd_loss's soft term
        return T**2 * _kl_batchmean(t / T, s / T)
    if beta == 1:  # the limit of JSD_beta / (1 - beta): the reverse KL
        return T**2 * _kl_batchmean(s / T, t / T)

    log_p_s = F.log_softmax(s / T, dim=-1)  # (N, V)
    log_p_t = F.log_softmax(t / T, dim=-1)
    log_beta, log_1m_beta = math.log(beta), math.log1p(-beta)
    u = (log_p_t - log_p_s) + (log_beta - log_1m_beta)  # log(beta p_t) - log((1 - beta) p_s)
    log_m_over_p_s = log_1m_beta + F.softplus(u)  # log m - log p_s
    log_m_over_p_t = log_beta + F.softplus(-u)  # log m - log p_t
    kl_t = -(log_p_t.exp() * log_m_over_p_t).sum(dim=-1)  # KL(p_t || m) per row
    kl_s = -(log_p_s.exp() * log_m_over_p_s).sum(dim=-1)  # KL(p_s || m) per row
    return T**2 * (beta * kl_t + (1 - beta) * kl_s).mean()


# ---------------------------------------------------------------------------
# 1c. A teacher kept on disk as its k likeliest classes (a top-k cache)
# ---------------------------------------------------------------------------

def topk_kd_loss(student_logits, topk_logprobs, topk_indices, *, T=4.0):
    """``kd_loss``'s soft term against a teacher known only by its top ``k`` classes.

    A cache of teacher outputs (:mod:`kdteach.teacher_cache`) may keep, per example, only
    the teacher's ``k`` largest log-probabilities at ``T = 1``, ``log p_i`` for the classes
    in ``topk_indices``; the mass outside them, ``r = 1 - sum_i p_i``, is known but not
    how it splits. **Treatment of the rest: it is spread evenly over the other ``V - k``
    classes**, each getting ``r / (V - k)`` — the completion that assumes nothing about
    which of them is likelier (maximum entropy), and that keeps the teacher a proper
    distribution that sums to 1 (dropping ``r`` and renormalising the top k instead would
    make the teacher, hence the student, over-confident). The completed teacher ``p`` is
    softened as in Hinton et al. (2015), Sec. 2, eq. (1), ``p_T,i ∝ p_i^(1/T)`` (the same as
    ``softmax(t / T)`` for the full logits ``t``), and::

        loss = T^2 * mean over rows of KL(p_T || softmax(s / T))

    With ``k = V`` nothing is completed and this is exactly ``kd_loss(s, t, T=T)`` (with
    ``topk_logprobs = log_softmax(t)``). A class the teacher gives probability 0 (``r = 0``)
    adds 0, as ``p log p -> 0`` says.

    ``student_logits`` is (B, V); ``topk_logprobs`` (B, k) float (half precision is upcast,
    as a cache stores it) and ``topk_indices`` (B, k) integer, the k distinct classes of each
    row, ``1 <= k <= V``. The teacher's side is detached. ``r`` is computed from the
    log-probabilities, clamped at 0 (rounding a half-precision cache can make the top k sum
    to slightly more than 1).

    Range: ``1e-3 <= T <= 1e4`` (a ``ValueError`` outside), student logits up to 1e30 in
    size, and log-probabilities down to -1e4 (as a half-precision cache stores them).
    """
    _check_temperature(T)
    s = _position_logits("student_logits", student_logits)
    lp = _float_tensor("topk_logprobs", topk_logprobs, ndim=2, layout="(batch, k)").detach()
    idx = _topk_indices(topk_indices, lp, s)
    lp = lp.to(s.dtype)
    V, k = s.shape[1], lp.shape[1]
    if _check_values() and (torch.logsumexp(lp, dim=1) > 1e-2).any():
        raise ValueError("topk_logprobs must be log-probabilities (each row's exp summing to at "
                         "most 1), got rows summing to more; pass log_softmax(teacher_logits) "
                         "at T = 1, as kdteach.teacher_cache stores them, not raw logits")
    if k < V:  # each of the other V - k classes gets an even share of the rest
        rest = (-torch.expm1(torch.logsumexp(lp, dim=1, keepdim=True))).clamp_min(0)
        full = (rest.log() - math.log(V - k)).expand_as(s)  # -inf where r = 0
    else:
        full = torch.full_like(s, -math.inf)  # every entry is overwritten by the top k
    full = full.scatter(1, idx, lp)
    log_p = F.log_softmax(full / T, dim=-1)  # p_T: rows with r = 0 keep -inf off the top k
    log_q = F.log_softmax(s / T, dim=-1)
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return T**2 * terms.sum(dim=-1).mean()


# ---------------------------------------------------------------------------
# 2. Features: hints (FitNets) and attention transfer
# ---------------------------------------------------------------------------

def hint_loss(student_feat, teacher_feat):
    """FitNets hint loss: mean squared error between student and teacher features.

    Romero et al. (2015), Sec. 2.2, eq. (3)::

        L_HT = 1/2 * || u_h(x) - r(v_g(x)) ||^2

    ``u_h`` is the teacher's hint layer, ``v_g`` the student's guided layer and
    ``r`` a small learned regressor that brings the student's features to the
    teacher's shape. Pass the regressed student features ``r(v_g(x))`` as
    ``student_feat``; the two shapes must match exactly.

    Convention: we return the plain mean ``mean((s - t)^2)`` over every element
    (what ``F.mse_loss`` does), not the paper's ``1/2 *`` squared norm. The two
    differ only by a constant factor, which the loss weight absorbs; the mean
    keeps the value independent of batch size and feature size.

    Range: features with at least one value per sample (a ``ValueError`` for
    an empty one, such as shape (B, 0)), up to 1e15 in size in float32. The
    loss is a mean of squares: far beyond that (1e30 squared is 1e60) the
    true value does not fit in float32 and comes out as ``inf``; the
    gradient ``2 (s - t) / N`` stays finite. Use float64 for such features.
    """
    s = _features("student_feat", student_feat, min_dim=2, layout="(B, ...)")
    t = _features("teacher_feat", teacher_feat, min_dim=2, layout="(B, ...)").detach()
    if s.shape != t.shape:
        raise ValueError(
            f"student_feat and teacher_feat must have the same shape, got {tuple(s.shape)} "
            f"and {tuple(t.shape)}; map the student's features to the teacher's shape "
            "first (e.g. with a 1x1 convolution regressor, as FitNets does)"
        )
    return (s - t).pow(2).mean()


def attention_map(feat, p=2):
    """Spatial attention map of a (B, C, H, W) feature tensor, flattened and L2-normalised.

    Zagoruyko & Komodakis (2017), Sec. 3.1. The map collapses the channels of
    an activation tensor ``A`` with ``F^p_sum(A) = sum_c |A_c|^p``; eq. (2)
    then compares the maps as vectors ``Q = vec(F(A))`` divided by their L2
    norm, ``Q / ||Q||_2``. Larger ``p`` puts more weight on the most active
    positions.

    We average over channels instead of summing: the factor ``1/C`` cancels in
    the normalisation, so the result is the same. Returns shape (B, H*W), one
    unit-L2-norm row per sample. Gradients flow through it (``at_loss`` is the
    one that detaches the teacher).

    For the same reason we may first divide each sample by its largest
    ``|A|``: then ``|A|^p`` lies in [0, 1] and is exactly 1 at the maximum,
    so neither ``p = 200`` nor features of 1e30 can overflow, and the map
    cannot underflow to all zeros. The divisor is a constant to autograd
    (the map does not depend on it).

    Range: ``1 <= p <= 1000`` (a ``ValueError`` outside; below 1 the slope of
    ``|A|^p`` at a zero activation is infinite); features of any size from
    1e-30 to 1e30, with at least one channel and one position (an all-zero
    sample gives an all-zero map).
    """
    _check_attention_power(p)
    a = _features("feat", feat, ndim=4, layout="(B, C, H, W)").abs()
    largest = a.detach().amax(dim=(1, 2, 3), keepdim=True)  # per sample: (B, 1, 1, 1)
    a = a / torch.where(largest > 0, largest, 1.0)  # now in [0, 1]; an all-zero sample stays 0
    q = a.pow(p).mean(dim=1).flatten(1)  # (B, H*W)
    return F.normalize(q, p=2, dim=1)


def at_loss(student_feat, teacher_feat, p=2):
    """Attention transfer loss between two (B, C, H, W) feature tensors.

    Zagoruyko & Komodakis (2017), Sec. 3.1, eq. (2)::

        L_AT = L_CE + beta/2 * sum_j || Q_S^j / ||Q_S^j||_2 - Q_T^j / ||Q_T^j||_2 ||_p

    where ``j`` runs over the chosen pairs of layers and ``Q = vec(F^p_sum(A))``
    (see ``attention_map``).

    Convention (different from the formula as printed): for one pair of layers
    we return the *squared* difference of the normalised maps averaged over the
    batch and the H*W positions,
    ``(attention_map(s) - attention_map(t)).pow(2).mean()``, with no ``beta/2``
    and no (unsquared) p-norm of the difference. Multiply by your own weight
    ``beta`` and sum over layer pairs outside. The paper's CIFAR experiments set
    ``beta`` to 10^3 divided by the map size and the batch size, i.e. a mean
    like this one times a constant.

    The channel counts may differ (the maps have no channel axis); batch size
    and spatial size must match. The teacher is detached. Range: as for
    ``attention_map``.
    """
    _check_attention_power(p)
    s = _features("student_feat", student_feat, ndim=4, layout="(B, C, H, W)")
    t = _features("teacher_feat", teacher_feat, ndim=4, layout="(B, C, H, W)").detach()
    _check_same_batch("student_feat", s, "teacher_feat", t)
    if s.shape[2:] != t.shape[2:]:
        raise ValueError(
            f"student_feat and teacher_feat must have the same spatial size (H, W), got "
            f"{tuple(s.shape[2:])} and {tuple(t.shape[2:])}; resize one of them first, "
            "e.g. with F.interpolate or F.adaptive_avg_pool2d"
        )
    return (attention_map(s, p) - attention_map(t, p)).pow(2).mean()


# ---------------------------------------------------------------------------
# 3. Relations between samples: RKD and similarity-preserving KD
# ---------------------------------------------------------------------------

def _rescaled(x):
    """x times the power of two that brings its largest |value| into [0.5, 1).

    RKD and SP do not depend on the overall scale of their input, so rescaling it first
    changes only the arithmetic: squares of 1e30 no longer overflow, nor do those of 1e-30
    underflow to 0. Multiplying by a power of two is exact in floating point, so ordinary
    inputs give the very same bits as without it. The factor is a constant to autograd
    (the loss does not depend on it).
    """
    _, exponent = torch.frexp(x.detach().abs().amax())  # max |x| = mantissa * 2**exponent
    return torch.ldexp(x, -exponent)  # x * 2**-exponent


def _unit(x):
    """x / ||x||_2 along the last dimension, like F.normalize, except at a zero vector.

    A zero vector (two equal samples, or an all-zero one) has no direction. F.normalize
    divides it by eps = 1e-12 instead, which keeps it 0 but gives it a slope of 1e12: a
    needless gradient explosion, and an overflow for inputs near 1e-30. Here a vector no
    longer than eps is left as it is (~0), with slope 1.
    """
    norm = x.norm(dim=-1, keepdim=True)
    return x / torch.where(norm > 1e-12, norm, 1.0)


def _pairwise_distances(e):
    """Matrix of Euclidean distances ||e_i - e_j||_2 between the rows of e (B, D)."""
    diff = e[:, None, :] - e[None, :, :]  # (B, B, D)
    squared = diff.pow(2).sum(dim=-1)  # (B, B)
    off_diagonal = ~torch.eye(len(e), dtype=torch.bool, device=e.device)
    # sqrt has an infinite slope at 0, so keep the diagonal (always 0) out of it.
    return torch.where(off_diagonal, squared.clamp_min(1e-12).sqrt(), torch.zeros_like(squared))


def _normalised_distances(e):
    """Distances divided by their mean over distinct pairs i != j (RKD's psi_D)."""
    d = _pairwise_distances(_rescaled(e))  # psi_D ignores scale: see _rescaled
    # The diagonal is exactly 0, so the mean over i != j is the full sum over B(B - 1) pairs;
    # unlike d[mask].mean(), this needs no host-device sync on a GPU.
    mu = d.sum() / (len(e) * (len(e) - 1))
    return d / mu.clamp_min(1e-12)


def rkd_distance_loss(student_emb, teacher_emb):
    """RKD distance-wise loss: match the shape of the batch, not the points.

    Park, Kim, Lu & Cho (2019), Sec. 3.2.1 "Distance-wise distillation loss"
    (the potential psi_D, its normaliser mu, the loss L_RKD-D and the Huber
    loss l_delta)::

        psi_D(t_i, t_j) = ||t_i - t_j||_2 / mu,    mu = mean over pairs i != j of ||t_i - t_j||_2
        L_RKD-D = sum over pairs (i, j) of l_delta(psi_D(t_i, t_j), psi_D(s_i, s_j))
        l_delta(x, y) = 1/2 (x - y)^2 if |x - y| <= 1, else |x - y| - 1/2

    ``l_delta`` is the Huber loss with delta = 1, i.e. ``F.smooth_l1_loss``.
    Dividing by ``mu`` makes the loss blind to the overall scale of each
    embedding space, so student and teacher need not live at the same scale,
    nor in the same dimension.

    Convention: instead of the sum, we average over all B*B entries of the two
    normalised distance matrices, including the diagonal (0 on both sides), as
    the authors' code does. Embeddings are flattened to (B, D); the widths D
    may differ between student and teacher. Needs a batch of at least 2.

    Range: embeddings of any size from 1e-30 to 1e30 (they are rescaled to
    a largest ``|value|`` near 1 before the distances are squared), with at
    least one value per sample.
    """
    s = _embeddings("student_emb", student_emb, min_batch=2, loss="rkd_distance_loss")
    t = _embeddings("teacher_emb", teacher_emb, min_batch=2, loss="rkd_distance_loss")
    _check_same_batch("student_emb", s, "teacher_emb", t)
    with _no_autocast(s), torch.no_grad():
        psi_t = _normalised_distances(t)
    with _no_autocast(s):
        psi_s = _normalised_distances(s)
        return F.smooth_l1_loss(psi_s, psi_t, beta=1.0)


def _angle_cosines(e):
    """cos of the angle at e_j between e_i - e_j and e_k - e_j, as a (B, B, B) tensor [j, i, k].

    When i == j or k == j one of the vectors is zero; _unit then leaves it
    zero, so those degenerate entries are 0.
    """
    e = _rescaled(e)  # angles ignore scale: see _rescaled
    u = _unit(e[None, :, :] - e[:, None, :])  # u[j, i] = unit(e_i - e_j)
    return torch.einsum("jid,jkd->jik", u, u)


def rkd_angle_loss(student_emb, teacher_emb):
    """RKD angle-wise loss: match the angles formed by every triplet of samples.

    Park, Kim, Lu & Cho (2019), Sec. 3.2.2 "Angle-wise distillation loss"
    (the potential psi_A and the loss L_RKD-A, with the same Huber loss as the
    distance-wise loss)::

        psi_A(t_i, t_j, t_k) = cos(angle t_i t_j t_k) = <e_ij, e_kj>,   e_ij = (t_i - t_j) / ||t_i - t_j||_2
        L_RKD-A = sum over triplets (i, j, k) of l_delta(psi_A(t_i, t_j, t_k), psi_A(s_i, s_j, s_k))

    Angles are unchanged by scaling, so no normaliser is needed.

    Convention: we average over all B*B*B triplets, as the authors' code does;
    the degenerate ones (i == j or k == j) have cosine 0 on both sides and only
    add to the count. Embeddings are flattened to (B, D); widths may differ.
    Needs a batch of at least 3. Memory grows like B^2 * D + B^3.

    Range: as for ``rkd_distance_loss``.
    """
    s = _embeddings("student_emb", student_emb, min_batch=3, loss="rkd_angle_loss")
    t = _embeddings("teacher_emb", teacher_emb, min_batch=3, loss="rkd_angle_loss")
    _check_same_batch("student_emb", s, "teacher_emb", t)
    with _no_autocast(s), torch.no_grad():
        cos_t = _angle_cosines(t)
    with _no_autocast(s):
        cos_s = _angle_cosines(s)
        return F.smooth_l1_loss(cos_s, cos_t, beta=1.0)


def _similarity_matrix(f):
    """SP's G: the (B, B) matrix of dot products f_i . f_j, each row scaled to unit L2 norm."""
    f = _rescaled(f)  # G ignores the scale of f: see _rescaled
    g = f @ f.T
    return _unit(g)  # each row scaled to unit L2 norm


def sp_loss(student_feat, teacher_feat):
    """Similarity-preserving KD: samples that look alike to the teacher should look alike to the student.

    Tung & Mori (2019), Sec. 3, eqs. (1)-(4)::

        G~ = Q Q^T                                Q: activations reshaped to (b, -1)
        G[i, :] = G~[i, :] / ||G~[i, :]||_2       each row scaled to unit L2 norm
        L_SP = 1/b^2 * || G_T - G_S ||_F^2

    and the student is trained on ``CE + gamma * L_SP``. ``b`` is the
    batch size. The (b, b) matrices exist for any feature widths, so student
    and teacher features may have different shapes as long as the batch sizes
    agree. Needs a batch of at least 2.

    A "read the code" fact: torchdistill 1.1.5's ``SPKDLoss`` normalises with
    ``normalize(G, 1)``. The second positional argument of
    ``torch.nn.functional.normalize`` is ``p``, not ``dim``, so that is an L1
    row normalisation (along the default dim=1), not the paper's L2. We follow
    the paper.

    Range: as for ``rkd_distance_loss``.
    """
    s = _embeddings("student_feat", student_feat, min_batch=2, loss="sp_loss")
    t = _embeddings("teacher_feat", teacher_feat, min_batch=2, loss="sp_loss")
    _check_same_batch("student_feat", s, "teacher_feat", t)
    b = s.shape[0]
    # Under autocast a matmul would run in half precision; keep it in float32.
    with _no_autocast(s), torch.no_grad():
        g_t = _similarity_matrix(t)
    with _no_autocast(s):
        g_s = _similarity_matrix(s)
        return (g_t - g_s).pow(2).sum() / b**2


# ---------------------------------------------------------------------------
# 4. Learning from peers, and a teacher-free baseline
# ---------------------------------------------------------------------------

def dml_loss(logits, peer_logits, targets):
    """Deep mutual learning: cross-entropy plus the mean KL to each peer's prediction.

    Zhang, Xiang, Hospedales & Lu (2018), Sec. 3.3 "Extension to Larger Student
    Cohorts", eq. (10); Sec. 3.1 gives the same loss for a pair of networks::

        L_k = CE(p_k, y) + 1/(K-1) * sum over peers l != k of KL(p_l || p_k)

    ``p`` are ordinary softmax probabilities (no temperature). ``logits`` are
    network k's logits (B, C); ``peer_logits`` is a list or tuple holding the
    other K-1 networks' logits, each (B, C); a single tensor counts as one
    peer. KL is summed over classes and averaged over the batch. The peers are
    detached: each network is updated with its own loss, the peers' predictions
    acting as fixed targets for that step.

    Range: logits up to 1e30 in size.
    """
    z = _logits("logits", logits)
    if isinstance(peer_logits, torch.Tensor):
        peer_logits = [peer_logits]
    if not isinstance(peer_logits, (list, tuple)):
        raise TypeError(
            f"peer_logits must be a tensor or a list/tuple of tensors, got "
            f"{type(peer_logits).__name__}; wrap your peers' logits in a list"
        )
    if len(peer_logits) == 0:
        raise ValueError("peer_logits is empty; pass at least one peer's logits (a list of (B, C) tensors)")
    peers = []
    for i, peer in enumerate(peer_logits):
        name = f"peer_logits[{i}]"
        peer = _logits(name, peer).detach()
        _check_same_logits_shape("logits", z, name, peer)
        peers.append(peer)
    y = _targets(targets, z, logits_name="logits")

    mimicry = sum(_kl_batchmean(peer, z) for peer in peers) / len(peers)
    return F.cross_entropy(z, y) + mimicry


def label_smoothing_loss(logits, targets, smoothing=0.1):
    """Cross-entropy against smoothed labels; a teacher-free stand-in for soft targets.

    Szegedy et al. (2016), Sec. 7 "Model Regularization via Label Smoothing"::

        q'(k) = (1 - eps) * [k == y] + eps / K
        loss  = - sum_k q'(k) log p(k)   (averaged over the batch)

    With ``smoothing = eps = 0`` this is the ordinary cross-entropy. Useful to
    compare with KD: both train on a softened target, but label smoothing
    spreads the mass uniformly instead of the way a teacher ranks the classes.
    Same value as ``F.cross_entropy(logits, targets, label_smoothing=eps)``.

    Range: logits up to 1e30 in size.
    """
    checks.fraction(smoothing, "smoothing")
    z = _logits("logits", logits)
    y = _targets(targets, z, logits_name="logits")
    log_p = F.log_softmax(z, dim=-1)
    nll_true = -log_p.gather(1, y[:, None]).squeeze(1)  # -log p(y)
    nll_uniform = -log_p.mean(dim=-1)  # -(1/K) sum_k log p(k)
    return ((1 - smoothing) * nll_true + smoothing * nll_uniform).mean()


# ---------------------------------------------------------------------------
# 5. Input checks (plumbing: skip on a first reading)
# ---------------------------------------------------------------------------

T_MIN, T_MAX = 1e-3, 1e4  # the temperatures softmax_t, kd_loss, reverse_kl and generalized_jsd accept
P_MIN, P_MAX = 1, 1000  # the powers attention_map and at_loss accept


def _check_temperature(T):
    T = checks.positive_number(T, "T", example="T=4.0")
    if not T_MIN <= T <= T_MAX:
        raise ValueError(f"T must be between {T_MIN:g} and {T_MAX:g}, got {T:g}; outside that range "
                         "softmax(z / T) is practically the one-hot argmax (small T) or uniform (large T), "
                         "and T^2 * KL cannot be computed in float32; distillation uses T from about 1 to 20")


def _check_beta(beta):
    if not checks.is_real(beta):
        raise TypeError(f"beta must be a real number in [0, 1], got {type(beta).__name__}; "
                        "pass e.g. beta=0.5")
    if not 0 <= beta <= 1:
        raise ValueError(f"beta must be a number in [0, 1], got {beta}; beta = 0 is the forward "
                         "KL(p_t || p_s), beta = 1 the reverse KL(p_s || p_t), and beta = 0.5 the "
                         "ordinary Jensen-Shannon divergence")
    return float(beta)


def _check_attention_power(p):
    p = checks.positive_number(p, "p")
    if not P_MIN <= p <= P_MAX:
        raise ValueError(f"p must be between {P_MIN} and {P_MAX}, got {p:g}; below 1 the gradient of "
                         "|A|^p at a zero activation is infinite; the paper uses p = 1, 2 or 4")


def _float_tensor(name, x, *, ndim=None, min_dim=1, layout=None):
    """Check that x is a finite floating-point tensor of the right rank; return it upcast to float32.

    ``layout`` (e.g. "(B, C, H, W)") only makes the error message clearer.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; convert it with torch.as_tensor(...)")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}; convert it with .float()")
    wanted = f" {layout}" if layout else ""
    if ndim is not None and x.dim() != ndim:
        raise ValueError(f"{name} must be {ndim}-D{wanted}, got shape {tuple(x.shape)}; "
                         "use .unsqueeze(0) for a single sample")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s){wanted}, got shape "
                         f"{tuple(x.shape)}; add a batch dimension with .unsqueeze(0)")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (batch size 0); pass at least one sample")
    if _check_values() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the model outputs "
                         "(a smaller learning rate or gradient clipping often helps)")
    return x if x.dtype == torch.float64 else x.float()


def _features(name, x, **shape):
    """Features: a finite float tensor (see _float_tensor) with at least one value per sample."""
    f = _float_tensor(name, x, **shape)
    if f.numel() == 0:
        raise ValueError(f"{name} has no features (shape {tuple(f.shape)}); every sample needs at "
                         "least one value: check the layer (and the slicing) that produced it")
    return f


def _logits(name, x):
    """Logits must be a finite (B, K) float tensor."""
    return _float_tensor(name, x, ndim=2, layout="(batch, classes)")


def _position_logits(name, x):
    """A language model's logits, one row per position: a finite (N, V) float tensor, N, V >= 1."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        if x.dim() != 2:
            raise ValueError(f"{name} must be 2-D (positions, vocabulary), got shape {tuple(x.shape)}; "
                             "flatten a language model's (B, L, V) logits with .flatten(0, 1) and keep "
                             "the positions that count (e.g. logits.flatten(0, 1)[mask.flatten()]), "
                             "or use .unsqueeze(0) for a single position")
        if x.shape[0] == 0:
            raise ValueError(f"{name} has no rows (shape {tuple(x.shape)}): no position was selected; "
                             "check the mask that picks the positions to distil")
        if x.shape[1] == 0:
            raise ValueError(f"{name} has no vocabulary (shape {tuple(x.shape)}); each row needs the "
                             "logits of at least one token")
    return _float_tensor(name, x, ndim=2, layout="(positions, vocabulary)")


def _check_same_positions(s, t):
    if s.shape != t.shape:
        raise ValueError(f"student_logits and teacher_logits must have the same shape (positions, "
                         f"vocabulary), got {tuple(s.shape)} and {tuple(t.shape)}; both models must "
                         "share one vocabulary, and the same positions must be selected from each")


def _embeddings(name, x, *, min_batch, loss):
    """Relation losses compare samples within a batch: flatten to (B, D) and require B >= min_batch."""
    e = _features(name, x, min_dim=2, layout="(B, ...)")
    if e.shape[0] < min_batch:
        raise ValueError(f"{name} needs a batch of at least {min_batch} samples for {loss}, "
                         f"got {e.shape[0]}; use a larger batch")
    return e.flatten(1)


def _check_same_batch(name_a, a, name_b, b):
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same batch size, got {a.shape[0]} and "
                         f"{b.shape[0]}; compute both on the same batch of inputs")


def _check_same_logits_shape(name_a, a, name_b, b):
    _check_same_batch(name_a, a, name_b, b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{name_a} and {name_b} must have the same number of classes, got {a.shape[1]} "
                         f"and {b.shape[1]}; both models must predict the same label set")


def _targets(targets, logits, logits_name="student_logits"):
    """Targets must be B integer class indices in [0, K)."""
    if not isinstance(targets, torch.Tensor):
        raise TypeError(f"targets must be a torch.Tensor of class indices, got {type(targets).__name__}; "
                        "convert it with torch.as_tensor(..., dtype=torch.long)")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"targets must hold integer class indices, got dtype {targets.dtype}; "
                        "convert it with .long() (soft-label targets are not supported here)")
    batch, classes = logits.shape
    if targets.dim() != 1 or targets.shape[0] != batch:
        raise ValueError(f"targets must be 1-D with one class index per row of {logits_name} "
                         f"(batch size {batch}), got shape {tuple(targets.shape)}")
    if _check_values() and ((targets < 0) | (targets >= classes)).any():
        raise ValueError(f"targets must be class indices in [0, {classes}), got values from "
                         f"{int(targets.min())} to {int(targets.max())}; check the label encoding")
    return targets.long()


def _topk_indices(indices, logprobs, student):
    """Top-k class indices: an integer (B, k) tensor shaped like ``topk_logprobs``, with k
    distinct classes in [0, V) per row."""
    if not isinstance(indices, torch.Tensor):
        raise TypeError(f"topk_indices must be a torch.Tensor of class indices, got "
                        f"{type(indices).__name__}; convert it with torch.as_tensor(..., dtype=torch.long)")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise TypeError(f"topk_indices must hold integer class indices, got dtype {indices.dtype}; "
                        "convert it with .long()")
    if indices.shape != logprobs.shape:
        raise ValueError(f"topk_indices must have the shape of topk_logprobs {tuple(logprobs.shape)}, "
                         f"got {tuple(indices.shape)}; pass both from the same torch.topk call")
    batch, classes = student.shape
    if indices.shape[0] != batch:
        raise ValueError(f"topk_logprobs and topk_indices have {indices.shape[0]} rows but "
                         f"student_logits has {batch}; look up the teacher's outputs for the same "
                         "examples (by index) as the batch")
    if indices.shape[1] > classes:
        raise ValueError(f"topk_indices has k = {indices.shape[1]} columns, more than the student's "
                         f"{classes} classes; k must be between 1 and {classes}")
    if indices.shape[1] == 0:
        raise ValueError("topk_indices has k = 0 columns; keep at least the teacher's top class")
    indices = indices.long().to(student.device)
    if _check_values():
        if ((indices < 0) | (indices >= classes)).any():
            raise ValueError(f"topk_indices must be class indices in [0, {classes}), got values "
                             f"from {int(indices.min())} to {int(indices.max())}")
        ordered = indices.sort(dim=1).values
        if (ordered[:, 1:] == ordered[:, :-1]).any():
            raise ValueError("topk_indices repeats a class within a row; each row must list k "
                             "distinct classes (as torch.topk returns them)")
    return indices


def _check_values():
    # Inside torch.compile, a data-dependent `if` would split the graph; skip it there.
    return _VALUE_CHECKS.get() and not torch.compiler.is_compiling()


def _no_autocast(x):
    """A context in which autocast is off, so matmuls run in the inputs' float32."""
    return torch.autocast(device_type=x.device.type, enabled=False)
