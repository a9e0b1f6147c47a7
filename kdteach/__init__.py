"""kdteach: the library behind the knowledge-distillation course.

The notebooks in ``notebooks/`` import what they need from these modules, listed from the
bottom layer up (a module imports only from the layers below it):

* foundations, which know nothing of training:
  ``config`` (profiles, device, seeding, paths), ``checks`` (argument checks),
  ``files`` (atomic writes), ``data`` (the shipped MNIST / Fashion-MNIST, held on the
  device, and the on-device batch loader), ``text`` (Tiny Shakespeare: its characters and
  token windows on the device), ``models`` (teachers and students), ``gpt`` (a small
  character-level GPT, its decoding and bits per character), ``losses``
  (every distillation loss), ``features`` (recording inner layers), ``connectors``
  (student-to-teacher feature maps), ``metrics`` (parameters, bytes, FLOPs, latency),
  ``evidence`` (paired comparisons over seeds, with a 95 % interval);
* the loop: ``train`` (``fit``, ``distill`` and the epoch loop ``run_epochs`` under them),
  and what is built on it: ``online`` (mutual learning, born-again networks, ensembles),
  ``quantize`` (int8 after distillation), ``cache`` and ``zoo`` (trained teachers, kept on
  disk), ``results`` (measured results files), ``distributed`` (the same loop on several
  processes under ``torchrun``: DDP student, sharded loader) and ``teacher_cache`` (teacher
  outputs on disk, one shard per rank: full logits or the top k, read by example index);
* the screen: ``viz`` (plots) and ``widgets`` (the sliders); the loop never imports them;
* things a learner runs: ``exercises`` (one module of self-checks per notebook),
  ``bench`` (``python -m kdteach.bench``: a tutorial loop vs ``train.distill``) and
  ``experiments`` (paper-scale scripts, ``python -m kdteach.experiments.hinton_mnist``,
  ``torchrun --standalone --nproc_per_node=2 -m kdteach.experiments.distill_ddp``).

The maintainers' tools (course site, student edition, runtime table, CUDA-graph
prototype) live beside the package, in ``tools/``, and are not installed with it.

``import kdteach`` is cheap: a module is imported the first time it is used, so
``kdteach.losses`` works without importing it yourself.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("config", "checks", "files", "data", "text", "models", "gpt", "losses", "features",
               "connectors", "metrics", "evidence", "sequence_kd", "train", "online", "quantize", "cache", "zoo",
               "results", "distributed", "teacher_cache", "viz", "widgets", "exercises", "bench", "experiments")
__all__ = ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise  # the module exists but something it imports is missing
            raise AttributeError(f"module {__name__!r} has no attribute {name!r} "
                                 f"({__name__}.{name} does not exist yet)") from err
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SUBMODULES))
