"""The student edition and the static course site, built from ``notebooks/``.

Two commands (the Makefile's ``make student`` and ``make book``)::

    python -m tools.publish student [--out build/student]
    python -m tools.publish book    [--out build/site] [NOTEBOOK ...]

(run from the repository root: ``tools`` is maintainers' tooling, not installed with kdteach).

**Student edition.** Every notebook with its solution cells (tagged ``solution``) removed by
nbconvert's ``TagRemovePreprocessor``, outputs cleared. The exercise cells stay, with their
self-checks: unanswered, they print "Not answered yet" and return False. Other files in
``notebooks/`` (figures, ``results/``) are copied beside them. :func:`solution_dependencies`
finds cells that read a variable last set by a solution, which would break (or silently
change) without it; ``tests/course/test_student_edition.py`` fails on such cells.

**Course site.** Each notebook is executed (nbconvert's ``ExecutePreprocessor``, quick
profile unless ``KDTEACH_PROFILE`` says otherwise, inline matplotlib, widget state stored,
``KDTEACH_PROGRESS=0`` so that no tqdm bar becomes a stale widget on the page) and exported
to one HTML page with its plots embedded. ``index.html`` is made from the course map in
``README.md``. The site loads nothing from the network: the widget manager
(``@jupyter-widgets/html-manager``), ``require.js`` and MathJax 2 are taken from the npm
registry with ``npm pack`` once, kept in ``build/vendor/``, and copied into ``_static/``.
Without npm or the registry the site is still built: pages whose sliders cannot be drawn
say that they are interactive in JupyterLab, and equations stay as LaTeX source.

**What a build never deletes.** Both commands build into a fresh folder beside ``--out``
(``.NAME.building-XXXX``, same file system) and only then put it in place: the old output
is renamed aside (``.NAME.old-XXXX``), the new one renamed in, and the old one removed, so
an interruption leaves one of them in place. The existing ``--out`` is replaced only if it

* does not exist, or is an empty folder, or
* was made by this tool: it holds the marker file ``.kdteach-build`` that every build
  writes (what made it, and the sha256 of each file as built), and no file in it was
  changed or added since (a student's answers in ``build/student`` are never lost;
  ``__pycache__`` folders, and checkpoints that are copies of built files, do not count).

Anything else is refused with a :class:`PublishError` (a ``ValueError``; on the command line
one line and exit status 1) naming the folder, before anything is read or written: pick a
new or empty folder for ``--out``, or delete it yourself. Outputs of this tool from before
outputs were marked (an old ``build/site`` or ``build/student``) have no marker, and are
refused like any other folder: delete them once yourself; every later build replaces its
own. ``--out`` may not be ``--src``, contain it, or lie inside it (compared after resolving
symlinks). A notebook that is not JSON, or not a valid notebook, stops the build with an
error naming the file; whatever fails, the build folder is removed and the existing output
is left as it was. (A build killed outright can leave a ``.NAME.building-XXXX`` folder
beside ``--out``; it is never the output, and may be deleted.) The npm packages in
``build/vendor/`` are likewise only ever added: a folder there that is not a complete
unpacking is reported, not removed.

Why nbconvert and not Jupyter Book: Jupyter Book 2 cannot build offline (it downloads its
theme), and Jupyter Book 1 loads MathJax and the widget manager from CDNs as well; nbconvert
is already installed with JupyterLab, and one small module makes the index and the links.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from kdteach import config
from tools.notebooks import NOTEBOOKS, NoSuchNotebook, notebook_paths

SOLUTION_TAG = "solution"
BUILD = config.project_root() / "build"
README = config.project_root() / "README.md"

# npm packages for the site's scripts, pinned. html-manager 1.0.x is the one for
# ipywidgets 8 (widget state version 2); MathJax 2.7 is what nbconvert's templates configure.
NPM_PACKAGES = {
    "@jupyter-widgets/html-manager": "1.0.15",
    "requirejs": "2.3.8",
    "mathjax": "2.7.9",
}
# The part of MathJax 2 that TeX-AMS_CHTML-full needs (5 MB of its 63).
_MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML-full.js", "config/Safe.js",
                  "extensions/", "jax/input/TeX/", "jax/output/CommonHTML/", "jax/element/",
                  "fonts/HTML-CSS/TeX/woff/", "localization/en/")
MATHJAX_URL = "_static/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
WIDGET_NOTE = ("This output is an interactive widget (a slider and the plot it drives). "
               "Run the notebook in JupyterLab (<code>make lab</code>) to use it.")
SAVED_WIDGET_NOTE = ("A saved view of an interactive widget: on this page the plot stays as it was "
                     "drawn; in JupyterLab (<code>make lab</code>) moving the slider redraws it.")


MARKER = ".kdteach-build"  # in every output folder this tool writes: see _replaceable
_MARKER_HEAD = "made by python -m tools.publish"


class PublishError(ValueError):
    """A build refused or stopped for a reason the user can fix: the message says how."""


class MalformedNotebook(PublishError):
    """A notebook that is not JSON, or not a valid notebook (the message names the file)."""


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _read(path: Path):
    """The notebook at ``path`` (nbformat 4), or :class:`MalformedNotebook` naming the file."""
    import nbformat
    from nbformat import reader

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MalformedNotebook(f"{path} is not a notebook: it is not UTF-8 text") from None
    except OSError as err:
        raise MalformedNotebook(f"cannot read the notebook {path}: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise MalformedNotebook(f"{path} is not a notebook: it is not JSON ({err.msg} at line "
                                f"{err.lineno}, column {err.colno})") from None
    if not isinstance(data, dict):
        raise MalformedNotebook(f"{path} is not a notebook: its JSON is a {type(data).__name__}, "
                                "not an object with cells")
    try:
        nb = nbformat.convert(reader.reads(text), 4)
        nbformat.validate(nb)
    except (nbformat.ValidationError, nbformat.NBFormatError, AttributeError, KeyError,
            TypeError, ValueError) as err:
        where = "/".join(str(p) for p in getattr(err, "absolute_path", None) or ())
        what = getattr(err, "message", None) or str(err)
        raise MalformedNotebook(f"{path} is not a valid notebook"
                                f"{f' (at {where})' if where else ''}: "
                                f"{_one_line(what.splitlines()[0] if what else type(err).__name__)}"
                                ) from None
    return nb


# -- output folders: built aside, replaced only when this tool made them -------------------

def _check_source_and_output(src: Path, out: Path, kind: str) -> None:
    """Refuse an ``out`` that is ``src``, contains it, or lies inside it (resolved paths)."""
    s, o = src.resolve(), out.resolve()
    if not s.is_dir():
        raise PublishError(f"--src {src} is not a folder of notebooks; point --src at one "
                           f"(default {NOTEBOOKS})")
    if o == s:
        relation, harm = "is the source folder", "replacing it would delete the notebooks"
    elif o in s.parents:
        relation, harm = "contains the source folder", "replacing it would delete the notebooks"
    elif s in o.parents:
        relation, harm = "is inside the source folder", "the build would land among the notebooks"
    else:
        return
    same = "" if (str(o), str(s)) == (str(out), str(src)) else f" (resolved: {o} and {s})"
    example = s.parent / f"{s.name}-{kind}"
    raise PublishError(f"--out {out} {relation} --src {src}{same}: {harm}. Pick an --out "
                       f"outside {src} that does not contain it, e.g. {example}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every non-folder entry under ``folder`` (symlinks not followed), POSIX relative paths."""
    found = []
    for root, dirs, files in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            found.append((rel / name).as_posix())
    return sorted(found)


def _write_marker(folder: Path, command: str) -> None:
    lines = [f"{_MARKER_HEAD} {command} (kdteach) on {time.strftime('%Y-%m-%d %H:%M:%S')}. "
             "The next build replaces this folder, unless a file below was changed or one was "
             "added. Files as built (sha256, path):"]
    lines += [f"{_sha256(folder / rel)}  {rel}" for rel in _files(folder) if rel != MARKER]
    (folder / MARKER).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _built_files(folder: Path) -> dict[str, str] | None:
    """``{path: sha256}`` from ``folder``'s marker, or None if it has no (readable) marker."""
    marker = folder / MARKER
    if not marker.is_file() or marker.is_symlink():
        return None
    try:
        head, *rows = marker.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not head.startswith(_MARKER_HEAD):
        return None
    built = {}
    for row in rows:
        digest, sep, rel = row.partition("  ")
        if not sep or len(digest) != 64:
            return None
        built[rel] = digest
    return built


def _touched(folder: Path, built: dict[str, str]) -> list[str]:
    """Files in ``folder`` changed or added since the build that ``built`` describes."""
    hashes = set(built.values())
    touched = []
    for rel in _files(folder):
        path = folder / rel
        if rel == MARKER or "__pycache__" in rel.split("/"):
            continue
        digest = None if path.is_symlink() else _sha256(path)
        if rel in built:
            if digest != built[rel]:
                touched.append(f"{rel} (changed)")
        elif not (".ipynb_checkpoints" in rel.split("/") and digest in hashes):
            touched.append(f"{rel} (added)")
    return touched


def _replaceable(out: Path) -> None:
    """Raise :class:`PublishError` unless ``out`` is absent, empty, or an output of this
    tool (marked) with no file changed or added since it was built."""
    if not out.exists():
        return
    if not out.is_dir():
        raise PublishError(f"--out {out} is a file, not a folder: pick a new or empty folder "
                           "for --out")
    try:
        if not any(out.iterdir()):
            return
    except OSError as err:
        raise PublishError(f"cannot look into --out {out} ({err.strerror or err}): pick a new or "
                           "empty folder for --out") from None
    built = _built_files(out)
    if built is None:
        raise PublishError(
            f"refusing to replace {out}: it is not empty and has no {MARKER} marker, so "
            f"python -m tools.publish did not make it. Pick a new or empty folder for --out, or "
            f"delete {out} yourself if nothing in it is needed (if it is an earlier output of "
            "this tool, it was made before outputs were marked: delete it once yourself).")
    touched = _touched(out, built)
    if touched:
        more = f" and {len(touched) - 5} more" if len(touched) > 5 else ""
        shown = ", ".join(touched[:5]) + more
        raise PublishError(
            f"refusing to replace {out}: files in it were changed or added since it was built "
            f"({shown}). Move them out of {out}, or delete it yourself, or pick a new or empty "
            "folder for --out.")


def _new_name(parent: Path, prefix: str) -> Path:
    while True:
        path = parent / f"{prefix}{uuid.uuid4().hex[:8]}"
        if not os.path.lexists(path):
            return path


@contextlib.contextmanager
def _building(src: Path, out: Path, command: str, kind: str):
    """Check ``src`` and ``out``, then yield a fresh folder beside ``out`` to build in; on
    success mark it and put it in place of ``out``; on any failure remove it (``out`` is
    left as it was)."""
    _check_source_and_output(src, out, kind)
    _replaceable(out)
    target = out.resolve()  # a symlinked --out: replace the folder it points to
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        work = _new_name(target.parent, f".{target.name}.building-")
        try:
            work.mkdir()  # honours the umask, unlike mkdtemp's 0700
            break
        except FileExistsError:
            continue
    try:
        yield work
        _write_marker(work, command)
        _replaceable(out)  # again: a long build gives time to save a notebook in it
        old = None
        if target.exists():
            old = _new_name(target.parent, f".{target.name}.old-")
            target.rename(old)
        try:
            work.rename(target)
        except BaseException:
            if old is not None:
                old.rename(target)
            raise
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as err:
            print(f"publish: could not remove the previous output, now at {old} ({err}); "
                  "delete it yourself", file=sys.stderr)


# -- the student edition -----------------------------------------------------------------

def is_solution(cell) -> bool:
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_notebook(nb):
    """``nb`` without its solution cells, outputs or stored widget state (a copy)."""
    import copy

    from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

    nb = copy.deepcopy(nb)
    nb, _ = TagRemovePreprocessor(enabled=True, remove_cell_tags={SOLUTION_TAG}).preprocess(nb, {})
    nb, _ = ClearOutputPreprocessor(enabled=True).preprocess(nb, {})
    nb.metadata.pop("widgets", None)
    return nb


def student_edition(src: Path = NOTEBOOKS, out: Path = BUILD / "student", names=None) -> list[Path]:
    """Write the student edition of the notebooks in ``src`` to ``out`` and return the
    notebooks' paths there. ``out`` is replaced only if it is absent, empty, or an unchanged
    earlier output of this tool; otherwise :class:`PublishError` (see the module's docstring)."""
    import nbformat

    src, out = Path(src), Path(out)
    _check_source_and_output(src, out, "student")
    paths = notebook_paths(src, names)
    with _building(src, out, "student", "student") as work:
        notebooks = [(path, _read(path)) for path in paths]  # all readable, before writing
        shutil.copytree(src, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns(
            "*.ipynb", ".ipynb_checkpoints", "__pycache__", "_build", MARKER))
        for path, nb in notebooks:
            nbformat.write(student_notebook(nb), work / path.name)
    return [out / path.name for path in paths]


def _cell_names(source: str) -> tuple[set[str], set[str]]:
    """(names a cell binds, names it reads before binding them) — a static approximation,
    statement by statement, good enough to find cells that use a solution's variables."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        tree = ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return set(), set()
    binds, reads = set(), set()
    for statement in tree.body:
        stored, loaded = set(), set()
        for node in ast.walk(statement):
            if isinstance(node, ast.Name):
                (stored if isinstance(node.ctx, (ast.Store, ast.Del)) else loaded).add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                stored.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                stored.update((a.asname or a.name).split(".")[0] for a in node.names)
        reads |= loaded - binds
        binds |= stored
    return binds, reads


def solution_dependencies(nb) -> list[tuple[int, str, int]]:
    """``(cell, name, solution_cell)`` for each name a non-solution cell reads whose last
    binding before it was in a solution cell: without the solutions that cell fails, or
    runs on the exercise's placeholder (``answer = None``) instead of the answer."""
    last_bound_by: dict[str, int | None] = {}  # name -> solution cell index, or None
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        binds, reads = _cell_names(cell.source)
        if is_solution(cell):
            last_bound_by.update(dict.fromkeys(binds, i))
            continue
        found += [(i, name, last_bound_by[name]) for name in sorted(reads)
                  if last_bound_by.get(name) is not None]
        last_bound_by.update(dict.fromkeys(binds))
    return found


# -- the scripts the site needs, from npm --------------------------------------------------

def vendor_scripts(vendor: Path = BUILD / "vendor", *, fetch: bool = True) -> dict[str, Path]:
    """Unpacked npm packages in ``vendor``: ``{"widgets": dir with embed-amd.js,
    "requirejs": require.js, "mathjax": dir with MathJax.js}`` for those available.
    Missing ones are fetched with ``npm pack`` when ``fetch`` and npm works; otherwise left
    out (the site then does without them)."""
    vendor = Path(vendor)
    wanted = {"widgets": ("@jupyter-widgets/html-manager", "dist/embed-amd.js"),
              "requirejs": ("requirejs", "require.js"),
              "mathjax": ("mathjax", "MathJax.js")}
    found = {}
    for key, (package, marker) in wanted.items():
        version = NPM_PACKAGES[package]
        unpacked = vendor / f"{package.replace('/', '__')}-{version}"
        if not (unpacked / marker).exists() and fetch:
            _npm_unpack(package, version, unpacked)
        if (unpacked / marker).exists():
            found[key] = unpacked / marker if key == "requirejs" else (unpacked / marker).parent
    return found


def _npm_unpack(package: str, version: str, dest: Path) -> None:
    if os.path.lexists(dest):  # not a complete unpacking (vendor_scripts looked): not ours
        print(f"publish: {dest} exists but is not a complete unpacking of {package}@{version}; "
              f"going without it (delete {dest} yourself to fetch it again)", file=sys.stderr)
        return
    npm = shutil.which("npm")
    if npm is None:
        print(f"publish: npm not found; the site goes without {package}", file=sys.stderr)
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        try:
            proc = subprocess.run([npm, "pack", f"{package}@{version}", "--pack-destination", tmp,
                                   "--silent", "--no-fund", "--no-audit"],
                                  capture_output=True, text=True, timeout=300, cwd=tmp)
        except (OSError, subprocess.TimeoutExpired) as err:
            print(f"publish: npm pack {package}@{version} failed ({err}); going without it",
                  file=sys.stderr)
            return
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            print(f"publish: npm pack {package}@{version} failed (offline?); going without it:"
                  f"\n{proc.stderr.strip()[-500:]}", file=sys.stderr)
            return
        staging = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as tar:
            members = []
            for m in tar.getmembers():
                rel = m.name.removeprefix("package/")
                if not m.isfile() or rel.startswith("/") or ".." in Path(rel).parts:
                    continue
                if package == "mathjax" and not rel.startswith(_MATHJAX_PARTS):
                    continue
                if package == "@jupyter-widgets/html-manager" and (
                        not rel.startswith("dist/") or rel.endswith(".map")):
                    continue
                m.name = rel
                members.append(m)
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(staging, members=members, **safe)
        if os.path.lexists(dest):  # appeared meanwhile: never removed (see below)
            print(f"publish: {dest} appeared while unpacking {package}; going without it",
                  file=sys.stderr)
            return
        staging.rename(dest)


# -- the course site --------------------------------------------------------------------

@dataclass
class Page:
    notebook: Path
    html: Path
    title: str
    seconds: float
    widgets: int = 0  # widget views on the page


@dataclass
class Site:
    out: Path
    pages: list[Page] = field(default_factory=list)
    scripts: dict[str, Path] = field(default_factory=dict)

    @property
    def index(self) -> Path:
        return self.out / "index.html"


_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}
{%- if resources.require_js_url -%}{{ super() }}{%- endif -%}
{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
{%- if resources.mathjax_url -%}{{ super() }}{%- endif -%}
{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block html_head_css -%}
<style>
.kd-nav { font: 14px/1.5 system-ui, sans-serif; padding: 8px 16px; border-bottom: 1px solid #ddd;
          display: flex; gap: 1.5em; background: #fafafa; }
.kd-nav a { color: #1565c0; text-decoration: none; }
.kd-note { border-left: 4px solid #1565c0; background: #e3f2fd; padding: 6px 10px; margin: 4px 0;
           font: 14px/1.4 system-ui, sans-serif; }
.jupyter-widgets { font-family: system-ui, sans-serif; font-size: 13px; }
details.kd-solution > summary { cursor: pointer; color: #555; font: 13px system-ui, sans-serif; }
</style>
{%- endblock html_head_css -%}
{%- block body_header -%}
{{ super() }}
<nav class="kd-nav">{{ resources.site_nav }}</nav>
{%- endblock body_header -%}
{% block footer_js %}
<script>
// Solution cells start collapsed, as in JupyterLab.
document.querySelectorAll(".jp-Cell.celltag_solution").forEach(function (cell) {
  var d = document.createElement("details"); d.className = "kd-solution";
  d.innerHTML = "<summary>Solution (click to show)</summary>";
  cell.parentNode.insertBefore(d, cell); d.appendChild(cell);
});
</script>
{% endblock footer_js %}
"""


def _title(nb, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return fallback


def execute(nb, cwd: Path, timeout: int = 600):
    """Run ``nb`` top to bottom in a fresh kernel (in ``cwd``) and store the widget state.
    A cell that raises stops the build with that cell's traceback."""
    from nbconvert.preprocessors import ExecutePreprocessor

    # Kernels inherit the quick profile unless one is set, and inline matplotlib so that
    # plots (also inside widgets) are recorded in the page. No tqdm progress bars: in a
    # kernel they are widgets, and the page would show a stale bar (or a note) in their place.
    with config.temporary_env(KDTEACH_PROFILE=os.environ.get("KDTEACH_PROFILE", "quick"),
                              MPLBACKEND="module://matplotlib_inline.backend_inline",
                              KDTEACH_PROGRESS="0"):
        ep = ExecutePreprocessor(timeout=timeout, kernel_name="python3", store_widget_state=True)
        ep.preprocess(nb, {"metadata": {"path": str(cwd)}})
    return nb


def _markdown_notebook(path: Path):
    from nbformat.v4 import new_markdown_cell, new_notebook

    return new_notebook(cells=[new_markdown_cell(path.read_text(encoding="utf-8"))])


def _widget_views(nb) -> int:
    return sum("application/vnd.jupyter.widget-view+json" in out.get("data", {})
               for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))


def _annotate_widgets(nb, drawable: bool) -> None:
    """Put a note after each widget, or instead of it when the page cannot draw widgets."""
    from nbformat.v4 import new_output

    if not drawable:
        nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if "application/vnd.jupyter.widget-view+json" not in out.get("data", {}):
                outputs.append(out)
                continue
            note = new_output("display_data", data={
                "text/html": f'<p class="kd-note">{SAVED_WIDGET_NOTE if drawable else WIDGET_NOTE}</p>'})
            outputs += [out, note] if drawable else [note]
        cell.outputs = outputs


def _exporter(scripts: dict[str, Path]):
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(extra_loaders=[jinja2.DictLoader({"kdsite.html.j2": _TEMPLATE})],
                            template_file="kdsite.html.j2")
    # Never a CDN: local copies or nothing.
    exporter.require_js_url = "_static/require.js" if "requirejs" in scripts else ""
    exporter.widget_renderer_url = "_static/widgets/embed-amd.js"
    exporter.mathjax_url = MATHJAX_URL if "mathjax" in scripts else ""
    return exporter


def _link_pages(text: str, stems: set[str]) -> str:
    """``href="NN_x.ipynb#a"`` (or ``.md``) -> ``href="NN_x.html#a"`` for pages on the site."""
    def fix(m):
        stem = Path(m.group(2)).name
        return f'{m.group(1)}{stem}.html{m.group(3) or ""}"' if stem in stems else m.group(0)
    return re.sub(r'(href=")(?:\./)?([\w./-]+?)\.(?:ipynb|md)(#[^"]*)?"', fix, text)


def _nav(i: int, pages: list[tuple[str, str]]) -> str:
    parts = ['<a href="index.html">Course map</a>']
    if i > 0:
        parts.append(f'<a href="{pages[i - 1][0]}.html">← {html.escape(pages[i - 1][1])}</a>')
    if i + 1 < len(pages):
        parts.append(f'<a href="{pages[i + 1][0]}.html">{html.escape(pages[i + 1][1])} →</a>')
    return " ".join(parts)


def build_site(src: Path = NOTEBOOKS, out: Path = BUILD / "site", names=None, *,
               run: bool = True, timeout: int = 600, vendor: Path = BUILD / "vendor",
               fetch: bool = True, readme: Path = README, log=print) -> Site:
    """Execute the notebooks (unless ``run=False``) and write the site to ``out``. ``out`` is
    replaced only if it is absent, empty, or an unchanged earlier output of this tool;
    otherwise :class:`PublishError` (see the module's docstring)."""
    src, out = Path(src), Path(out)
    _check_source_and_output(src, out, "site")
    paths = notebook_paths(src, names)
    with _building(src, out, "book", "site") as work:
        return _build_site(src, out, work, paths, names, run=run, timeout=timeout,
                           vendor=vendor, fetch=fetch, readme=readme, log=log)


def _build_site(src: Path, out: Path, work: Path, paths: list[Path], names, *, run, timeout,
                vendor, fetch, readme, log) -> Site:
    """:func:`build_site`'s work: the site for ``out``, written into ``work``."""
    notebooks = [(p, _read(p)) for p in paths]  # all readable, before anything runs
    if not names:  # Markdown pages of the course (the glossary): one markdown cell each
        notebooks += [(p, _markdown_notebook(p)) for p in sorted(src.glob("*.md"))
                      if p.name.lower() != "readme.md"]
    (work / "_static").mkdir()
    site = Site(out, scripts=vendor_scripts(vendor, fetch=fetch))
    if "widgets" in site.scripts:
        shutil.copytree(site.scripts["widgets"], work / "_static" / "widgets")
    if "requirejs" in site.scripts:
        shutil.copy2(site.scripts["requirejs"], work / "_static" / "require.js")
    if "mathjax" in site.scripts:
        shutil.copytree(site.scripts["mathjax"], work / "_static" / "mathjax")
    exporter = _exporter(site.scripts)
    widgets_ok = {"widgets", "requirejs"} <= set(site.scripts)
    titles = [(p.stem, _title(nb, p.stem)) for p, nb in notebooks]
    stems = {p.stem for p, _ in notebooks}
    for i, (path, nb) in enumerate(notebooks):
        start = time.perf_counter()
        if run and path.suffix == ".ipynb":
            log(f"publish: running {path.name} ...")
            execute(nb, path.parent, timeout)
        seconds = time.perf_counter() - start
        views = _widget_views(nb)
        if views:
            _annotate_widgets(nb, widgets_ok)
        body, _ = exporter.from_notebook_node(nb, resources={
            "metadata": {"name": titles[i][1]}, "site_nav": _nav(i, titles)})
        target = out / f"{path.stem}.html"
        (work / target.name).write_text(_link_pages(body, stems), encoding="utf-8")
        site.pages.append(Page(path, target, titles[i][1], seconds, views))
        log(f"publish: {target.relative_to(out.parent)} ({seconds:.0f} s, {views} widgets)")
    for asset in src.iterdir():  # figures the notebooks show by relative path
        if asset.is_dir() and asset.name in ("figures", "images", "img"):
            shutil.copytree(asset, work / asset.name)
    (work / site.index.name).write_text(index_page(site, readme), encoding="utf-8")
    return site


def course_map(readme: Path = README) -> list[tuple[str, str, str]]:
    """``(number, description, the rest of the row)`` of the README's "Course map" table."""
    text = Path(readme).read_text(encoding="utf-8") if Path(readme).exists() else ""
    m = re.search(r"^##\s*Course map\s*$(.*?)(?=^##\s|\Z)", text, re.M | re.S)
    rows = []
    for line in (m.group(1) if m else "").splitlines():
        cols = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cols) >= 2 and cols[1] and not set(cols[1]) <= set("-: ") and cols[1] != "notebook":
            rows.append((cols[0], cols[1], " ".join(cols[2:])))
    return rows


def index_page(site: Site, readme: Path = README) -> str:
    """The site's front page: the course map with a link to each built page."""
    by_number = {p.html.stem.split("_", 1)[0]: p for p in site.pages}
    by_stem = {p.html.stem: p for p in site.pages}
    rows, listed = [], set()
    for number, text, rest in course_map(readme):
        named = [by_stem[m] for m in re.findall(r"([\w-]+)\.(?:ipynb|md)\b", rest) if m in by_stem]
        named += [p for stem, p in by_stem.items()  # unnumbered pages, by name: "glossary"
                  if not stem[:1].isdigit() and re.search(rf"\b{re.escape(stem)}\b", text, re.I)]
        page = named[0] if named else by_number.get(number)
        if page is not None:
            listed.add(page.html.name)
            cell = f'<a href="{page.html.name}">{html.escape(text)}</a>'
        else:
            cell = f'{html.escape(text)} <span class="soon">(not on this site)</span>'
        rows.append(f"<tr><td>{html.escape(number)}</td><td>{cell}</td></tr>")
    for page in site.pages:  # notebooks the map does not list yet
        if page.html.name not in listed:
            number = page.html.stem.split("_", 1)[0]
            rows.append(f'<tr><td>{html.escape(number if number.isdigit() else "—")}</td>'
                        f'<td><a href="{page.html.name}">{html.escape(page.title)}</a></td></tr>')
    scripts = ("Sliders are drawn from the widget state saved when the page was built; "
               "they move, but only JupyterLab recomputes the plots under them."
               if {"widgets", "requirejs"} <= set(site.scripts) else
               "Sliders are interactive only in JupyterLab; here they are replaced by a note.")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>kdteach — a hands-on course on knowledge distillation</title>
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; max-width: 52em; margin: 2em auto; padding: 0 1em; }}
table {{ border-collapse: collapse; width: 100%; }}
td {{ border-bottom: 1px solid #ddd; padding: 6px 8px; vertical-align: top; }}
td:first-child {{ width: 3em; color: #555; }}
a {{ color: #1565c0; }} .soon {{ color: #888; font-size: 90%; }}
footer {{ margin-top: 2em; color: #666; font-size: 90%; }}
</style></head>
<body>
<h1>kdteach — a hands-on course on knowledge distillation</h1>
<p>Training a small <em>student</em> network to imitate a large <em>teacher</em>: from softmax
temperature and Hinton's soft targets to feature- and relation-based distillation. Each page
is a notebook of the course, run in the <code>{html.escape(os.environ.get("KDTEACH_PROFILE", "quick"))}</code>
profile when this site was built. To run and change the code, use JupyterLab: <code>make lab</code>.</p>
<h2>Course map</h2>
<table>
{chr(10).join(rows)}
</table>
<footer>{scripts} Built {time.strftime("%Y-%m-%d")} with nbconvert by
<code>python -m tools.publish book</code>.</footer>
</body></html>
"""


# -- command line -------------------------------------------------------------------------

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.publish", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    st = sub.add_parser("student", help="write the student edition (solutions removed)")
    st.add_argument("--src", type=Path, default=NOTEBOOKS)
    st.add_argument("--out", type=Path, default=BUILD / "student")
    st.add_argument("notebooks", nargs="*", help="only these (stems or paths)")
    bk = sub.add_parser("book", help="execute the notebooks and build the static site")
    bk.add_argument("--src", type=Path, default=NOTEBOOKS)
    bk.add_argument("--out", type=Path, default=BUILD / "site")
    bk.add_argument("--vendor", type=Path, default=BUILD / "vendor",
                    help="where the npm packages are kept (default build/vendor)")
    bk.add_argument("--offline", action="store_true", help="do not call npm")
    bk.add_argument("--timeout", type=int, default=600, help="seconds per cell")
    bk.add_argument("notebooks", nargs="*", help="only these (stems or paths)")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except (PublishError, NoSuchNotebook) as err:  # the user's to fix: one line, no traceback
        print(f"python -m tools.publish {args.command}: error: {_one_line(err, 1000)}",
              file=sys.stderr)
        return 1


def _run(args) -> int:
    if args.command == "student":
        written = student_edition(args.src, args.out, args.notebooks)
        for source, path in zip(notebook_paths(args.src, args.notebooks), written):
            for cell, name, sol in solution_dependencies(_read(source)):
                print(f"warning: {path.name} cell {cell} reads `{name}`, set by solution cell "
                      f"{sol}", file=sys.stderr)
        print(f"{len(written)} notebooks without solutions in {args.out}")
        return 0
    site = build_site(args.src, args.out, args.notebooks, timeout=args.timeout,
                      vendor=args.vendor, fetch=not args.offline)
    missing = sorted({"widgets", "requirejs", "mathjax"} - set(site.scripts))
    if missing:
        print(f"note: built without {', '.join(missing)} (npm unavailable): sliders show a note, "
              "equations stay LaTeX", file=sys.stderr)
    print(f"{len(site.pages)} pages; open {site.index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
