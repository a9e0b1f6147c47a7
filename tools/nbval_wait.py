"""A pytest plugin for every nbval run of the course: notebooks kept whole, output waited for.

``make test`` runs on two pytest-xdist workers (``--dist loadgroup``). nbval runs a notebook's
cells in order in one kernel, so every cell of a notebook carries the same ``xdist_group``
mark and goes to the same worker; without it xdist would deal the cells of one notebook out
one by one.

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


# tryfirst: the group mark must be on the item before xdist reads it in the same hook.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if is_notebook_cell(item):
            item.output_timeout = max(item.output_timeout, OUTPUT_WAIT_S)
            item.add_marker(pytest.mark.xdist_group(name=item.parent.nodeid))
