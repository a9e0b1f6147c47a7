"""Train the character-level GPT teacher of notebooks 10 and 11 and ship its weights.

    python -m kdteach.experiments.shakespeare_teacher                 # the quick teacher (CPU, minutes)
    python -m kdteach.experiments.shakespeare_teacher --profile full  # the larger one, on a GPU
    python -m kdteach.experiments.shakespeare_teacher --smoke         # seconds; a temporary folder

Trains :func:`kdteach.zoo.build_shakespeare_teacher` by the recipe in
``kdteach.zoo.SHAKESPEARE_RECIPES`` (through ``train.fit`` on token windows; the
validation bits per character after every epoch), then writes

* ``data/TinyShakespeare/teacher-<profile>.pt`` — the weights and the recipe, in the cache's
  format, loaded by :func:`kdteach.zoo.shakespeare_teacher` with ``weights_only=True``;
* ``data/TinyShakespeare/teacher-<profile>.json`` — their sha256, the command, the commit
  the run started at, the wall time and the curve;
* ``notebooks/results/shakespeare_teacher_<profile>.json`` — the same record, for the notebooks.

Every file is written to a temporary name and renamed, so an interrupted run leaves the
previous teacher in place.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from .. import cache, config, data, results, text, zoo


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m kdteach.experiments.shakespeare_teacher",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--profile", choices=config.PROFILES, default="quick")
    parser.add_argument("--device", default=None, help="cpu, cuda, … (default: the fastest)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (a model this small often runs best on 1)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps into a temporary folder: checks the script, ships nothing")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else config.device()
    recipe = dict(zoo.SHAKESPEARE_RECIPES[args.profile])
    vocab, train_ids, val_ids = text.corpus(device)
    model = zoo.build_shakespeare_teacher(len(vocab), args.profile)
    run = {**recipe, "epochs": 1, "steps_per_epoch": 3} if args.smoke else recipe
    env, start = results.provenance(), time.perf_counter()
    history = zoo.train_shakespeare_teacher(model, train_ids, val_ids, run)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())
    print(f"teacher: {parameters:,} parameters, {seconds:.0f} s, validation bits/char by epoch: "
          + ", ".join(f"{b:.3f}" for b in history["val_bpc"]))
    folder = Path(tempfile.mkdtemp()) if args.smoke else zoo.shipped_teacher_path(args.profile).parent
    weights = folder / f"teacher-{args.profile}.pt"
    cache.save(model, weights, recipe)
    record = {"sha256": data.file_sha256(weights), "command": " ".join(["python", "-m",
              "kdteach.experiments.shakespeare_teacher", *(argv if argv is not None else sys.argv[1:])]),
              "parameters": parameters, "recipe": recipe, "curve": history.records,
              "val_bpc": history["val_bpc"][-1], "environment": env, "seconds": seconds}
    results.write_json(weights.with_suffix(".json"), record)
    if not args.smoke:
        results.write(f"shakespeare_teacher_{args.profile}", record, seconds=seconds, env=env)
    print(f"wrote {weights} and {weights.with_suffix('.json').name}")
    return record


if __name__ == "__main__":
    main()
