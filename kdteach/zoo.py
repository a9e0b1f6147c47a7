"""The course's standard data and trained teachers, sized by the active profile.

Every notebook that needs "the MNIST teacher" or "the Fashion-MNIST teacher" calls these,
so all notebooks share one trained model per profile (through :mod:`kdteach.cache`)
instead of each training its own.
"""
from __future__ import annotations

from . import cache, config, data, models, train


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
