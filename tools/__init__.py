"""Maintainers' tooling for the kdteach course, run from the repository root; not installed
with the course (pyproject installs ``kdteach*`` only), and nothing a learner imports.

* ``python -m tools.publish student|book`` — the student edition and the static course site;
* ``python -m tools.runtimes`` — how long each notebook takes, empty cache then cached;
* ``python -m tools.cuda_graphs`` — the benchmark with a CUDA-graph prototype of distill's loop.
"""
