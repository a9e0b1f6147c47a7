"""A pytest plugin for every nbval run of the course: notebooks kept whole, output waited for.

``make test`` runs on two pytest-xdist workers. nbval runs a notebook's cells in order in one
kernel, so all the cells of a notebook must go to the same worker; every other test may go
to either, one by one. :func:`pytest_xdist_make_scheduler` hands xdist a scheduler that
groups work that way (xdist's own ``loadscope`` would also put all the tests of one module —
e.g. the twelve student-edition runs — on a single worker).

nbval also waits at most 5 s for a cell's output messages once the kernel has replied that
the cell finished, then stops the kernel and skips the rest of the notebook. With two
notebooks running at once on a 2-core machine the output can take longer than that to arrive,
and a notebook that works fails with "Timeout of 5 seconds exceeded waiting for output". The
cell's own limit (``--nbval-cell-timeout``) is unchanged.

Loaded by the repository's ``conftest.py`` for ``make test`` and with ``-p tools.nbval_wait``
by the tools that start nbval in a subprocess (the student edition's run, ``tools.runtimes``).
"""
from __future__ import annotations

import pytest

OUTPUT_WAIT_S = 60


def is_notebook_cell(item) -> bool:
    return hasattr(item, "output_timeout") and hasattr(item, "cell")


def work_unit(nodeid: str) -> str:
    """What xdist sends to one worker: a whole notebook, or a single test."""
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else nodeid


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if is_notebook_cell(item):
            item.output_timeout = max(item.output_timeout, OUTPUT_WAIT_S)


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent without it
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return work_unit(nodeid)

    return NotebookScheduling(config, log)
