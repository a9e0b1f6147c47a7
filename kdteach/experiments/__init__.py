"""Longer experiments, run as scripts, that write results files the notebooks read.

* ``python -m kdteach.experiments.hinton_mnist`` — Hinton, Vinyals & Dean (2015), section 3:
  the regularised 2×1200 teacher, the 2×800 student from scratch and the 2×800 student
  distilled at T = 20, on all of MNIST (``notebooks/results/hinton_mnist_full.json``,
  shown by notebook 03).

Each script has a ``--smoke`` mode (tiny sizes, results in a temporary folder) that the
tests run, and writes its numbers with :func:`kdteach.results.write`, never by hand.
"""
