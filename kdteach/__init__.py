"""kdteach: the library behind the knowledge-distillation course.

The notebooks in ``notebooks/`` import what they need from these modules:

* ``config``   — profiles (``KDTEACH_PROFILE=quick|full``), device choice, seeding, paths;
* ``data``     — the shipped MNIST / Fashion-MNIST (checked, decompressed, held on the
  device) and a fast on-device batch loader;
* ``models``   — the teachers and students;
* ``losses``   — distillation losses (Hinton KD, hints, attention, relational, ...);
* ``features`` — recording intermediate features (forward hooks, torch.fx);
* ``connectors`` — small learned layers mapping student features to the teacher's shape;
* ``train``    — the training loop;
* ``online``   — mutual learning, born-again networks, ensembles;
* ``quantize`` — post-training dynamic int8 quantisation and its size/latency profile;
* ``metrics``  — accuracy, errors, size and latency measurements;
* ``cache``    — trained teachers cached on disk so notebooks do not retrain them;
* ``viz``      — plots;
* ``widgets``  — the notebooks' interactive sliders;
* ``zoo``      — the course's standard datasets and trained teachers, sized by the profile;
* ``exercises`` — self-checks for the notebooks' exercises;
* ``results``  — measured results files under ``notebooks/results/``;
* ``bench``    — ``python -m kdteach.bench``: the tutorial loop vs ``train.distill``;
* ``experiments`` — paper-scale scripts (``python -m kdteach.experiments.hinton_mnist``);
* ``publish``  — the student edition and the static course site;
* ``runtimes`` — ``python -m kdteach.runtimes``: how long each notebook takes.

``import kdteach`` is cheap: a module is imported the first time it is used, so
``kdteach.losses`` works without importing it yourself.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "models", "losses", "features", "train", "metrics",
               "cache", "viz", "widgets", "zoo", "exercises", "results", "experiments",
               "connectors", "online", "quantize", "bench", "publish", "runtimes")
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
