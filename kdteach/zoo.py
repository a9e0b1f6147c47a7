"""The course's standard data and trained teachers, sized by the active profile.

Every notebook that needs "the MNIST teacher" or "the Fashion-MNIST teacher" calls these,
so all notebooks share one trained model per profile (through :mod:`kdteach.cache`)
instead of each training its own.
"""
from __future__ import annotations

import json
import warnings

import torch

from . import cache, config, data, gpt, models, text, train


def dataset(name: str, profile: config.Profile | None = None, *, seed: int = 0,
            device=None) -> tuple[data.Split, data.Split]:
    """``(train, test)`` of a shipped dataset at the profile's sizes (stratified subsets)."""
    p = profile or config.profile()
    device = device if device is not None else config.device()
    return (data.load(name, True, n=p.train_size, seed=seed, device=device),
            data.load(name, False, n=p.test_size, seed=seed, device=device))


def _teacher(name, dataset_name, build, recipe_extra, profile, seed, fit_kwargs):
    p = profile or config.profile()
    recipe = {"data": dataset_name, "train_size": p.train_size, "epochs": p.teacher_epochs,
              "batch_size": p.batch_size, "seed": seed, **recipe_extra, **fit_kwargs}

    def build_seeded():
        config.seed_everything(seed)
        return build()

    def fit(model):
        train_set, _ = dataset(dataset_name, p)
        train.fit(model, train_set, epochs=p.teacher_epochs, batch_size=p.batch_size,
                  seed=seed, **fit_kwargs)

    return cache.trained(f"{name}-{p.name}-seed{seed}", recipe, build_seeded, fit)


def mnist_teacher(*, seed: int = 0, profile: config.Profile | None = None) -> models.MLP:
    """Hinton's 784-1200-1200-10 teacher (dropout 0.5/0.2, ±2-pixel jitter) on MNIST."""
    return _teacher("mnist_teacher", "mnist", models.hinton_teacher,
                    {"arch": "mlp-784-1200-1200-10", "dropout": [0.2, 0.5]}, profile, seed,
                    {"lr": 2e-3, "jitter": 2})


def fashion_teacher(*, seed: int = 0, profile: config.Profile | None = None) -> models.ConvNet:
    """The CNN teacher (:func:`kdteach.models.cnn_teacher`) on Fashion-MNIST."""
    return _teacher("fashion_teacher", "fashion", models.cnn_teacher,
                    {"arch": "convnet-16-32-32-e256"}, profile, seed,
                    {"lr": 2e-3, "jitter": 0})


# --- the language-model teacher (notebooks 10 and 11) -----------------------------------

#: The character-level GPT teacher's recipe per profile: its sizes (kdteach.gpt), the
#: optimiser, and the token windows it sees. quick is sized for a 2-core CPU; full for a GPU.
SHAKESPEARE_RECIPES = {
    "quick": {"data": "tinyshakespeare-90/10", "n_layer": 4, "n_head": 4, "n_embd": 96,
              "block_size": 64, "batch_size": 32, "steps_per_epoch": 250, "epochs": 10,
              "lr": 2e-3, "optimizer": "adamw", "seed": 0},
    "full": {"data": "tinyshakespeare-90/10", "n_layer": 6, "n_head": 6, "n_embd": 384,
             "block_size": 256, "batch_size": 64, "steps_per_epoch": 500, "epochs": 10,
             "lr": 1e-3, "optimizer": "adamw", "seed": 0},
}


def shipped_teacher_path(profile_name: str = "quick"):
    """Where the course ships the trained quick teacher's weights (and, beside them, a
    ``.json`` with their sha256, the command and commit that made them and the curve)."""
    return config.data_dir() / "TinyShakespeare" / f"teacher-{profile_name}.pt"


def build_shakespeare_teacher(vocab_size: int, profile_name: str = "quick") -> gpt.GPT:
    """The untrained teacher GPT of ``profile_name``'s recipe, seeded."""
    r = SHAKESPEARE_RECIPES[profile_name]
    config.seed_everything(r["seed"])
    return gpt.GPT(gpt.GPTConfig(vocab_size, r["block_size"], n_layer=r["n_layer"],
                                 n_head=r["n_head"], n_embd=r["n_embd"]))


def train_shakespeare_teacher(model: gpt.GPT, train_ids, val_ids, recipe: dict, *,
                              progress: bool | None = None) -> train.History:
    """Train ``model`` by ``recipe`` (one of :data:`SHAKESPEARE_RECIPES`) through
    :func:`kdteach.train.fit` on token windows, recording the validation bits per character
    after every epoch (``val_bpc``, on the first 400 windows of ``val_ids``)."""
    r = recipe
    windows = text.WindowLoader(train_ids, r["block_size"], r["batch_size"], seed=r["seed"],
                                windows_per_epoch=r["steps_per_epoch"] * r["batch_size"])

    def val_bpc():
        return {"val_bpc": gpt.bits_per_char(model, val_ids, block_size=r["block_size"],
                                             max_windows=400)}

    return train.fit(model, windows, epochs=r["epochs"], lr=r["lr"], optimizer=r["optimizer"],
                     seed=r["seed"], eval_data=val_bpc, progress=progress)


def _shipped_problem(model: gpt.GPT, shipped, recipe: dict) -> str | None:
    """Why the shipped weights cannot be loaded into ``model`` (None: they were loaded)."""
    try:
        record = json.loads(shipped.with_suffix(".json").read_text())
        if data.file_sha256(shipped) != record["sha256"]:
            return f"{shipped.name} does not match the sha256 recorded in {shipped.stem}.json"
    except (OSError, ValueError, KeyError) as err:
        return f"{shipped.name} or {shipped.stem}.json is missing or unreadable ({err})"
    if not cache.load_into(model, shipped, recipe):
        return f"{shipped.name} holds weights of another recipe"
    return None


def shakespeare_teacher(*, profile: config.Profile | None = None, device=None) -> gpt.GPT:
    """The character-level GPT teacher of notebooks 10 and 11, trained on Tiny Shakespeare.

    In the quick profile the course ships its trained weights
    (``data/TinyShakespeare/teacher-quick.pt``, made by
    ``python -m kdteach.experiments.shakespeare_teacher``): they are checked against the
    sha256 recorded beside them and loaded with ``weights_only=True``. A missing or corrupt
    file is reported with a warning, and the teacher is trained again by the same recipe
    (minutes on a CPU) and kept in the cache. The full profile trains (meant for a GPU) and
    caches. Returns the model in ``eval()`` on ``device`` (default :func:`config.device`).
    """
    p = profile or config.profile()
    recipe = SHAKESPEARE_RECIPES[p.name]
    device = torch.device(device) if device is not None else config.device()
    vocab, train_ids, val_ids = text.corpus(device)
    shipped = shipped_teacher_path(p.name)
    if p.name == "quick" or shipped.exists():
        model = build_shakespeare_teacher(len(vocab), p.name)
        problem = _shipped_problem(model, shipped, recipe)
        if problem is None:
            return model.to(device).eval()
        warnings.warn(f"The shipped Shakespeare teacher cannot be used: {problem}. Training it "
                      "again by its recipe (minutes on a CPU). "
                      + data.restore_hint(f"TinyShakespeare/{shipped.name}"), stacklevel=2)
    return cache.trained(f"shakespeare_teacher-{p.name}", recipe,
                         lambda: build_shakespeare_teacher(len(vocab), p.name),
                         lambda m: train_shakespeare_teacher(m, train_ids, val_ids, recipe)
                         ).to(device).eval()
