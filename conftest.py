"""pytest configuration for the whole repository (tests/ and the notebooks run by nbval)."""
from tools.nbval_wait import pytest_collection_modifyitems  # noqa: F401  (a pytest hook)
