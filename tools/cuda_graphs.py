"""PROTOTYPE: the benchmark with distill's training step captured in one CUDA graph.

    python -m tools.cuda_graphs [--compile] --json PATH     # CUDA only; from the repository root

Runs ``python -m kdteach.bench`` (same options, same table, same JSON) with one more loop,
``kdteach+graphs`` (:func:`graphed_epoch`), timed beside the others at each batch size. It is
evidence for a proposed ``kdteach.train`` option, not part of the course: if the graphed loop
fails, the failure is reported in the table and under ``failed`` in the JSON, and the other
loops' numbers still stand. The JSON's ``settings.variants`` is ``["kdteach+graphs"]``.
``make gpu-results`` runs it last, allowed to fail, and writes
``notebooks/results/bench_gpu_extras.json``.
"""
from __future__ import annotations

import torch

from kdteach import bench, config, data, losses, train

PROG = "python -m tools.cuda_graphs"
LOOP = "kdteach+graphs"


def graphed_epoch(student, teacher, split: data.Split, *, batch_size: int,
                  device: torch.device, T: float = bench.PAPER_T,
                  alpha: float = bench.PAPER_ALPHA, lr: float = bench.LR, seed: int = 0) -> float:
    """distill's work with each step in one CUDA graph; returns the mean training loss.

    Not part of kdteach's loop: it measures what capturing the whole step (gather the
    batch from the resident data, student forward in bf16, kd_loss, backward, fused Adam)
    as one CUDA graph would add to :func:`kdteach.train.distill`, to decide whether the
    loop should offer it. Same data order (DeviceLoader, same seed), same cached teacher
    logits, same loss, same optimiser, same initial weights; only the launch overhead
    differs. The epoch's last, shorter batch runs eagerly.
    """
    device = torch.device(device)
    if device.type != "cuda":
        raise RuntimeError(f"CUDA graphs need a CUDA device, not {device}")
    loader = data.DeviceLoader(split, batch_size, seed=seed, device=device)
    student.to(device).train()
    teacher.eval()
    teacher_logits = train.predict(teacher, loader.images, device=device)  # as distill caches
    images, labels = loader.images, loader.labels
    optimizer = torch.optim.Adam(student.parameters(), lr=lr, fused=True, capturable=True)
    static_idx = torch.arange(batch_size, device=device)
    initial = {k: v.detach().clone() for k, v in student.state_dict().items()}

    def step(idx):
        x, y, t = images[idx], labels[idx], teacher_logits[idx]
        with torch.autocast("cuda", dtype=torch.bfloat16, cache_enabled=False):
            s = student(x)
        loss = losses.kd_loss(s.float(), t, y, T=T, alpha=alpha)
        loss.backward()
        optimizer.step()
        return loss.detach()

    with losses.value_checks(False):  # no host sync may happen inside a capture
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up before capture, as the CUDA-graph docs ask
            for _ in range(3):
                optimizer.zero_grad(set_to_none=True)
                step(static_idx)
        torch.cuda.current_stream(device).wait_stream(side)
        # Undo the warm-up: the same initial weights and a fresh optimiser state.
        with torch.no_grad():
            for k, v in student.state_dict().items():
                v.copy_(initial[k])
            for state in optimizer.state.values():
                for v in state.values():
                    if torch.is_tensor(v):
                        v.zero_()
        graph = torch.cuda.CUDAGraph()
        optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            static_loss = step(static_idx)

        loss_sum = torch.zeros((), device=device)
        for _, y, idx in loader.batches():
            if len(idx) == batch_size:
                static_idx.copy_(idx)
                graph.replay()
                loss = static_loss
            else:
                optimizer.zero_grad(set_to_none=True)
                loss = step(idx)
            loss_sum += loss.float() * len(y)
        return float(loss_sum) / len(labels)


def main(argv=None) -> dict:
    args = bench.parse_args(
        argv, prog=PROG,
        description="PROTOTYPE (CUDA only): the kdteach.bench benchmark with one more loop, "
                    f"{LOOP}, distill's step captured in a CUDA graph. Same options and JSON "
                    "as python -m kdteach.bench.")
    device = torch.device(args.device) if args.device is not None else config.device()
    if device.type != "cuda" or not torch.cuda.is_available():
        raise SystemExit(
            f"{PROG}: CUDA graphs need a CUDA GPU, and the benchmark would run on {device}"
            + ("" if torch.cuda.is_available() else
               " (torch.cuda.is_available() is False here)")
            + ". Without one, time the other loops with python -m kdteach.bench.")
    return bench.run(args, variants={LOOP: graphed_epoch},
                     command=bench.command_line(PROG, argv))


if __name__ == "__main__":
    main()
