"""A cache of trained models, so later notebooks load a teacher instead of retraining it.

A model is stored under a key derived from its *recipe* — a JSON-able dict naming
everything that determines the weights (data, architecture, epochs, seed, profile, …).
Change any of it and the key changes. Files are written atomically (a temp file in the
same folder, then ``os.replace``), so two notebooks training the same teacher at once can
only ever leave one complete file, never a torn one. Files are read with
``torch.load(weights_only=True)``; a corrupt or stale file is retrained with a warning.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from . import config
from .files import atomic_write

#: Bump when a change to the code makes earlier cached weights meaningless.
CACHE_VERSION = 1


def recipe_key(recipe: dict) -> str:
    """A short stable hash of ``recipe`` (key order does not matter)."""
    try:
        text = json.dumps({"cache_version": CACHE_VERSION, **recipe}, sort_keys=True)
    except TypeError as err:
        raise TypeError(f"recipe must be JSON-serialisable (str, int, float, list, dict): {err}") from err
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def path_for(name: str, recipe: dict, directory=None) -> Path:
    """Where the model ``name`` trained by ``recipe`` is (or would be) cached."""
    directory = Path(directory) if directory is not None else config.cache_dir()
    return directory / f"{name}-{recipe_key(recipe)}.pt"


def save(model: nn.Module, path, recipe: dict) -> Path:
    """Write ``model``'s weights and its recipe to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_write(path, "wb", fsync=True) as f:
        torch.save({"recipe": json.dumps(recipe, sort_keys=True), "state_dict": state}, f)
    return path


def load_into(model: nn.Module, path, recipe: dict) -> bool:
    """Load cached weights into ``model``; ``False`` (with a warning) if absent, corrupt or stale."""
    path = Path(path)
    if not path.is_file():
        return False
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("recipe") != json.dumps(recipe, sort_keys=True):
            raise ValueError("it was trained by a different recipe")
        state, own = blob["state_dict"], model.state_dict()
        # Check before loading: a failed load_state_dict has already copied the tensors
        # that fit, and the model would then be "retrained" from those stale weights.
        if set(state) != set(own) or any(state[k].shape != own[k].shape for k in own):
            raise ValueError("its weights do not fit this model")
        model.load_state_dict(state)
    except Exception as err:  # any unreadable file is retrained, never a crash
        warnings.warn(f"Ignoring cached model {path} ({err}); training it again.", stacklevel=3)
        return False
    return True


def trained(name: str, recipe: dict, build: Callable[[], nn.Module],
            train: Callable[[nn.Module], object], *, directory=None,
            verbose: bool = True) -> nn.Module:
    """The model ``build()`` trained by ``train(model)``, from the cache when possible.

    Returns the model in ``eval()`` mode on the device :func:`kdteach.config.device` picks.
    """
    path = path_for(name, recipe, directory)
    model = build()
    if load_into(model, path, recipe):
        if verbose:
            print(f"Loaded {name} from the cache ({path.name}).")
    else:
        if verbose:
            print(f"Training {name} (cached afterwards as {path.name}) …")
        train(model)
        try:
            save(model, path, recipe)
        except OSError as err:  # a full disk, a read-only folder, a file where a folder should be
            _warn_once(path.parent, f"Could not save {name} to the cache in {path.parent} "
                       f"({err.strerror or err}). The trained model is kept for this session but "
                       "will be trained again next time; set KDTEACH_CACHE to a writable "
                       "folder to keep it.")
    return model.to(config.device()).eval()


_warned_folders: set[str] = set()


def _warn_once(folder: Path, message: str) -> None:
    """One warning per cache folder and process: a notebook that trains five teachers into
    an unwritable folder says so once, not five times."""
    if str(folder) not in _warned_folders:
        _warned_folders.add(str(folder))
        warnings.warn(message, stacklevel=3)
