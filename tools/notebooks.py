"""The course notebooks: which ones a command works on (``tools.publish``, ``tools.runtimes``)."""
from __future__ import annotations

from pathlib import Path

from kdteach import config

NOTEBOOKS = config.project_root() / "notebooks"


class NoSuchNotebook(FileNotFoundError, ValueError):
    """A notebook named on the command line does not exist."""


def notebook_paths(src: Path | None = None, names=None) -> list[Path]:
    """The notebooks in ``src`` (default ``notebooks/``; top level, sorted), or only those in
    ``names``: stems such as ``00_welcome`` (looked up in ``src``) or paths to ``.ipynb`` files.

    Raises :class:`NoSuchNotebook` (a ``FileNotFoundError`` and a ``ValueError``) naming the
    missing ones.
    """
    src = Path(src) if src is not None else NOTEBOOKS
    if not names:
        return sorted(src.glob("*.ipynb"))
    paths = [Path(n) if Path(n).suffix == ".ipynb" and Path(n).is_file()
             else src / f"{Path(n).stem}.ipynb" for n in names]
    missing = [p.name if p.parent == src else str(p) for p in paths if not p.is_file()]
    if missing:
        raise NoSuchNotebook(f"no such notebook in {src}: {', '.join(missing)}; names are stems "
                             f"such as 00_welcome, or paths to .ipynb files.")
    return paths
