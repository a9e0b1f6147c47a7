"""The teacher's outputs, computed once and kept on disk: one file per rank's shard.

Distillation runs the teacher on every example every epoch, unless its outputs are kept.
:func:`kdteach.train.distill` keeps them in memory for one run; this module keeps them in
files, so a teacher that is expensive to run (or no longer at hand) is run once over the
dataset, by every rank of a job on its own shard, and any later run reads them back.

Per example (by its index in the dataset), a file stores either

* ``kind="full"``: the teacher's V logits, in half precision (2·V bytes), or
* ``kind="topk"``: its ``k`` largest log-probabilities at ``T = 1`` in half precision, their
  class indices (int16 when ``V <= 32767``, else int32) and the probability mass outside
  them, ``1 - sum exp(log p)``, in float32 — ``k·(2 + 2 or 4) + 4`` bytes, whatever ``V``.
  :func:`kdteach.losses.topk_kd_loss` distils from them (it spreads the rest evenly).

A file is a fixed magic line, a JSON header (format version, kind, dataset size ``n``,
``V``, ``k``, dtypes, the shard's rank and the job's size, its number of rows, and a
*fingerprint* of the teacher's weights and the dataset), then the arrays: the rows' global
example indices (int64), the values, and for top-k the indices and the rest. Files are
written atomically (:func:`kdteach.files.atomic_write`). :class:`TeacherCache` opens every
shard, refuses a file whose header does not match what the caller expects (another
teacher, another dataset, another ``k``) or whose size is not the one its header implies
(a truncated copy) — each time with a message saying how to rebuild it — and memory-maps
the arrays (``numpy.memmap``: nothing is read until looked up). Lookups are **by example
index**, never by position in a batch: ``cache.lookup(idx)`` with the global indices a
shuffled, sharded :class:`kdteach.data.DeviceLoader` yields returns that batch's rows in
that order, so a shuffled order stays aligned.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checks
from .data import check_pair
from .files import atomic_write

MAGIC = b"KDTEACH-TEACHER-CACHE\n"
FORMAT = 1
KINDS = ("full", "topk")
_ALIGN = 64  # arrays start on 64-byte boundaries


class TeacherCacheError(RuntimeError):
    """A cache file is missing, truncated or made for another teacher, dataset or k.
    The message says how to rebuild it."""


def fingerprint(teacher: nn.Module, data) -> str:
    """A sha256 of the teacher's weights (names, shapes, dtypes, values) and of the
    dataset's images and labels: a cache made for another teacher or data never matches."""
    images, labels = check_pair(data)
    h = hashlib.sha256()
    for name, t in sorted(teacher.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for t in (images, labels):
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def shard_range(n: int, rank: int, world_size: int) -> range:
    """The examples rank ``rank`` of ``world_size`` writes: a contiguous, near-equal slice."""
    return range(rank * n // world_size, (rank + 1) * n // world_size)


def shard_path(directory, name: str, rank: int, world_size: int) -> Path:
    return Path(directory) / f"{name}.rank{rank}-of-{world_size}.kdtc"


def rebuild_hint(directory, name: str) -> str:
    return (f"Rebuild it: delete {Path(directory) / name}.rank*.kdtc and run "
            "kdteach.teacher_cache.write_shard(teacher, data, directory, name, ...) on every rank "
            "again (each rank writes its own shard), with the teacher and data you train with.")


def _index_dtype(classes: int) -> np.dtype:
    return np.dtype(np.int16) if classes <= np.iinfo(np.int16).max else np.dtype(np.int32)


def _layout(header: dict) -> tuple[list[tuple[str, np.dtype, tuple]], int]:
    """The arrays of a file with this header: (name, dtype, shape) each, and their bytes."""
    rows, V, k = header["rows"], header["classes"], header["k"]
    arrays = [("example_index", np.dtype(np.int64), (rows,))]
    if header["kind"] == "full":
        arrays.append(("values", np.dtype(np.float16), (rows, V)))
    else:
        arrays += [("values", np.dtype(np.float16), (rows, k)),
                   ("indices", np.dtype(header["index_dtype"]), (rows, k)),
                   ("rest", np.dtype(np.float32), (rows,))]
    size = 0
    for _, dtype, shape in arrays:
        size += -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN
    return arrays, size


def bytes_per_example(kind: str, classes: int, k: int | None = None) -> int:
    """Bytes one example takes in a cache file (before alignment, without its int64 index):
    ``2·V`` for full logits; ``k·(2 + 2 or 4) + 4`` for the top k (values, indices, rest)."""
    if kind == "full":
        return 2 * classes
    if kind == "topk":
        return k * (2 + _index_dtype(classes).itemsize) + 4
    raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")


@torch.no_grad()
def write_shard(teacher: nn.Module, data, directory, name: str, *, kind: str = "topk",
                k: int | None = 10, rank: int = 0, world_size: int = 1,
                batch_size: int = 1000, fp: str | None = None) -> Path:
    """Run ``teacher`` (in ``eval()``, under ``no_grad``) over this rank's shard of ``data``
    (:func:`shard_range`) and write its outputs to ``<directory>/<name>.rank<r>-of-<w>.kdtc``.

    ``kind="full"`` keeps the logits, ``kind="topk"`` the ``k`` largest log-probabilities
    with their classes and the rest of the mass. ``fp`` is the :func:`fingerprint` (pass it
    when every rank computes it anyway; by default it is computed here). Returns the path.
    """
    checks.model(teacher, "teacher")
    images, labels = check_pair(data)
    if kind not in KINDS:
        raise ValueError(f"kind must be 'full' or 'topk', got {kind!r}.")
    world_size = checks.positive_int(world_size, "world_size")
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an int in [0, {world_size}), got {rank!r}.")
    batch_size = checks.positive_int(batch_size, "batch_size")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(name)) or str(name).startswith("."):
        raise ValueError(f"name={name!r} must be a plain file stem such as 'mnist-teacher'.")
    n = len(labels)
    fp = fp or fingerprint(teacher, (images, labels))
    rows = shard_range(n, rank, world_size)
    was_training = teacher.training
    teacher.eval()
    device = next(iter(teacher.parameters()), torch.empty(0)).device
    try:
        logits = [teacher(images[s:min(s + batch_size, rows.stop)].to(device)).float().cpu()
                  for s in range(rows.start, rows.stop, batch_size)]
    finally:
        teacher.train(was_training)
    logits = torch.cat(logits) if logits else torch.empty(0, 0)
    if len(logits) == 0:
        raise ValueError(f"rank {rank} of {world_size} has no examples of the {n}; use fewer "
                         "ranks than examples.")
    V = logits.shape[1]
    if kind == "topk":
        k = checks.positive_int(k, "k", "the number of classes kept per example")
        if k > V:
            raise ValueError(f"k={k} is more than the teacher's {V} classes; use k <= {V}.")
    else:
        k = V
    header = {"format": FORMAT, "kind": kind, "n": n, "classes": V, "k": k,
              "value_dtype": "float16", "index_dtype": _index_dtype(V).name,
              "rank": rank, "world_size": world_size, "rows": len(rows), "fingerprint": fp}
    arrays = {"example_index": np.arange(rows.start, rows.stop, dtype=np.int64)}
    if kind == "full":
        arrays["values"] = logits.half().numpy()
    else:
        logp = torch.log_softmax(logits, dim=1)
        top, idx = logp.topk(k, dim=1)
        arrays["values"] = top.half().numpy()
        arrays["indices"] = idx.numpy().astype(_index_dtype(V))
        arrays["rest"] = (-torch.expm1(torch.logsumexp(top, dim=1))).clamp_min(0).numpy()
    for key, dtype, shape in _layout(header)[0]:
        if arrays[key].shape != shape:  # an internal invariant: the header describes the data
            raise RuntimeError(f"{key} has shape {arrays[key].shape}, header says {shape}")
    path = shard_path(directory, name, rank, world_size)
    blob = json.dumps(header, sort_keys=True).encode()
    head = MAGIC + len(blob).to_bytes(8, "little") + blob
    head += b"\0" * (-len(head) % _ALIGN)
    with atomic_write(path, "wb", fsync=True) as f:
        f.write(head)
        for key, dtype, shape in _layout(header)[0]:
            raw = np.ascontiguousarray(arrays[key], dtype=dtype).tobytes()
            f.write(raw + b"\0" * (-len(raw) % _ALIGN))
    return path


def _read_header(path: Path, directory, name: str) -> tuple[dict, int]:
    hint = rebuild_hint(directory, name)
    try:
        with open(path, "rb") as f:
            start = f.read(len(MAGIC) + 8)
            if len(start) < len(MAGIC) + 8 or not start.startswith(MAGIC):
                raise TeacherCacheError(f"{path} is not a teacher-output cache file (or is "
                                        f"truncated before its header). {hint}")
            size = int.from_bytes(start[len(MAGIC):], "little")
            blob = f.read(size)
    except OSError as err:
        raise TeacherCacheError(f"{path} cannot be read ({err.strerror or err}). {hint}") from err
    try:
        if len(blob) != size:
            raise ValueError("truncated")
        header = json.loads(blob)
    except ValueError:
        raise TeacherCacheError(f"{path} has a truncated or unreadable header. {hint}") from None
    offset = len(MAGIC) + 8 + size
    return header, offset + (-offset % _ALIGN)


@dataclass
class _Shard:
    path: Path
    arrays: dict


class TeacherCache:
    """The shards of one cache, memory-mapped, looked up by example index.

    ``TeacherCache(directory, name, n=len(data), fingerprint=fp, kind=..., k=...)`` opens
    ``<name>.rank*-of-<w>.kdtc`` and checks, before anything is trusted: the magic line and
    format, the expected kind, ``k``, dataset size and fingerprint, that every rank of the
    job left its file, that each file is exactly as long as its header says, and that the
    shards cover every example exactly once. Anything else raises
    :class:`TeacherCacheError` with the way to rebuild.
    """

    def __init__(self, directory, name: str, *, n: int, fingerprint: str, kind: str = "topk",
                 k: int | None = None):
        directory = Path(directory)
        found = sorted(directory.glob(f"{name}.rank*-of-*.kdtc"))
        hint = rebuild_hint(directory, name)
        if not found:
            raise TeacherCacheError(f"No teacher-output cache {name!r} in {directory}. {hint}")
        sizes = {int(re.search(r"-of-(\d+)\.kdtc$", p.name).group(1)) for p in found}
        if len(sizes) != 1:
            raise TeacherCacheError(f"{directory} holds shards of {name!r} from jobs of "
                                    f"different sizes {sorted(sizes)}. {hint}")
        world = sizes.pop()
        expected = {shard_path(directory, name, r, world) for r in range(world)}
        if missing := sorted(str(p) for p in expected - set(found)):
            raise TeacherCacheError(f"Shards missing from the cache {name!r}: {missing}. {hint}")
        self.directory, self.name, self.n, self.kind = directory, name, n, kind
        self.shards: list[_Shard] = []
        owner = np.full(n, -1, dtype=np.int64)
        row = np.zeros(n, dtype=np.int64)
        for r in range(world):
            path = shard_path(directory, name, r, world)
            header, start = _read_header(path, directory, name)
            want = {"format": FORMAT, "kind": kind, "n": n, "fingerprint": fingerprint,
                    "rank": r, "world_size": world}
            if k is not None:
                want["k"] = k
            wrong = [f"{key}: file has {header.get(key)!r}, expected {value!r}"
                     for key, value in want.items() if header.get(key) != value]
            if wrong:
                what = ("it was made by another teacher or from other data"
                        if any(w.startswith("fingerprint") for w in wrong) else "it does not match")
                raise TeacherCacheError(f"{path}: {what} ({'; '.join(wrong)}). {hint}")
            arrays_spec, size = _layout(header)
            actual = path.stat().st_size
            if actual != start + size:
                raise TeacherCacheError(f"{path} is {actual} bytes but its header describes "
                                        f"{start + size} (a truncated or damaged copy). {hint}")
            arrays, offset = {}, start
            for key, dtype, shape in arrays_spec:
                arrays[key] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
                offset += -(-int(np.prod(shape)) * dtype.itemsize // _ALIGN) * _ALIGN
            ids = np.asarray(arrays["example_index"])
            if ids.size and (ids.min() < 0 or ids.max() >= n or (owner[ids] >= 0).any()
                             or len(np.unique(ids)) != ids.size):
                raise TeacherCacheError(f"{path} holds example indices outside [0, {n}) or "
                                        f"already held by another shard. {hint}")
            owner[ids], row[ids] = r, np.arange(ids.size)
            self.shards.append(_Shard(path, arrays))
            self.classes, self.k = header["classes"], header["k"]
        if (owner < 0).any():
            raise TeacherCacheError(f"The shards of {name!r} leave {int((owner < 0).sum())} of the "
                                    f"{n} examples out. {hint}")
        self._owner, self._row = owner, row

    def lookup(self, indices, device=None):
        """The cached outputs of the examples at ``indices`` (global example indices, e.g. the
        third item of a :class:`kdteach.data.DeviceLoader` batch), in that order:
        ``logits`` (B, V) float32 for ``kind="full"``; ``(logprobs, classes, rest)``, float32
        (B, k), int64 (B, k) and float32 (B,), for ``kind="topk"``."""
        idx = torch.as_tensor(indices).detach().cpu().long().numpy()
        if idx.ndim != 1:
            raise ValueError(f"indices must be 1-D, got shape {idx.shape}.")
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise ValueError(f"indices must be example indices in [0, {self.n}), got values from "
                             f"{idx.min()} to {idx.max()}.")
        out = {}
        keys = ("values",) if self.kind == "full" else ("values", "indices", "rest")
        for key in keys:
            first = self.shards[0].arrays[key]
            buf = np.empty((idx.size, *first.shape[1:]), dtype=first.dtype)
            for r, shard in enumerate(self.shards):
                mask = self._owner[idx] == r
                if mask.any():
                    buf[mask] = shard.arrays[key][self._row[idx[mask]]]
            out[key] = torch.from_numpy(buf)
        device = torch.device(device) if device is not None else torch.device("cpu")
        if self.kind == "full":
            return out["values"].float().to(device)
        return (out["values"].float().to(device), out["indices"].long().to(device),
                out["rest"].to(device))

    def bytes_on_disk(self) -> int:
        """The cache files' total size in bytes."""
        return sum(s.path.stat().st_size for s in self.shards)
