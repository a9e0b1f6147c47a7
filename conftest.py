"""pytest configuration for the whole repository (tests/ and the notebooks run by nbval)."""
from tools.nbval_wait import pytest_collection_modifyitems, pytest_xdist_make_scheduler  # noqa: F401  (pytest hooks)
