"""The notebooks' sliders work in a real browser: JupyterLab driven by headless Chromium.

For each notebook with sliders this test starts JupyterLab on 127.0.0.1 (a free port, a
random token, settings isolated in a temporary folder), opens a clean copy of the notebook
in Debian's Chromium through Playwright, runs all cells, waits for the kernel to go idle,
moves every slider with a label named in ``SLIDERS`` with the keyboard, and asserts that
its readout and the plot (the ``img`` bytes) or the text under it changed. Screenshots before and after each move go to
``tests/artifacts/browser/`` (ignored by git).

The whole module is skipped, with the reason, when Playwright or Chromium is missing;
``make test`` installs Chromium first where it can (``make browser``: apt-get as root).
``playwright install`` cannot download browsers here, so Playwright is pointed at the
system's Chromium (``/usr/bin/chromium``, or ``KDTEACH_CHROMIUM``).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"

# Notebook -> the labels of the sliders to move (a label matches if it starts with one of
# the given spellings: "T", "α" or "alpha").
SLIDERS = {
    "01_softmax_and_temperature": [("T",)],
    "03_hinton_kd": [("T",), ("α", "alpha")],
}

RUN_ALL_TIMEOUT_S = float(os.environ.get("KDTEACH_BROWSER_TIMEOUT", 600))  # whole notebook; ~1 min quiet
REDRAW_TIMEOUT_S = 60    # one slider move -> new plot or text
KEY_PRESSES = 6          # ArrowRight presses per slider (one step each)


def _chromium() -> str | None:
    for candidate in (os.environ.get("KDTEACH_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed (pip install playwright); the browser tests need it")
CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed: the browser tests need it (`apt-get install -y chromium` "
           "as root; `make test` does this on Debian/Ubuntu), or set KDTEACH_CHROMIUM")


# -- JupyterLab ------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    """A JupyterLab server of our own, rooted at a temporary folder."""

    def __init__(self, root: Path, home: Path):
        self.root, self.port, self.token = root, _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = home / "lab-settings"
        news = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
        news.parent.mkdir(parents=True)
        news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # Render every cell (no windowing), so that all sliders are in the page in order.
        tracker = settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
        tracker.parent.mkdir(parents=True)
        tracker.write_text(json.dumps({"windowingMode": "none"}))
        env = {**os.environ,
               "JUPYTER_CONFIG_DIR": str(home / "config"),
               "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
               "JUPYTERLAB_SETTINGS_DIR": str(settings),
               "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
               "KDTEACH_PROFILE": os.environ.get("KDTEACH_PROFILE", "quick"),
               # Plots must reach the page: the test session's Agg backend would draw nothing.
               "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
        self.log = (home / "lab.log").open("w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", "--port-retries=0", f"--IdentityProvider.token={self.token}",
             f"--ServerApp.root_dir={root}", "--allow-root",
             "--LabApp.expose_app_in_browser=True",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=root)

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        req = urllib.request.Request(
            f"{self.url}{path}", method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read()
        return json.loads(text) if text else None

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                self.api("/api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.3)
        raise RuntimeError(f"JupyterLab did not answer within {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 40) -> str:
        self.log.flush()
        self.log.seek(0)
        return "".join(self.log.readlines()[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.log.close()


def clean_copy(src: Path, dest_dir: Path) -> Path:
    """Copy a notebook without outputs or stored widget state: JupyterLab autosaves, and a
    stored state could draw sliders with no code running."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.get("metadata", {}).pop("widgets", None)
    dest = dest_dir / src.name
    dest.write_text(json.dumps(nb, indent=1), encoding="utf-8")
    return dest


@pytest.fixture(scope="module")
def lab():
    home = Path(tempfile.mkdtemp(prefix="kdteach-lab-"))
    root = home / "root"
    root.mkdir()
    server = Lab(root, home)
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


# -- driving a notebook ---------------------------------------------------------------

_STATE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.sessionContext || !w.context || !w.context.isReady) return null;
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return {ready: w.sessionContext.isReady, status: kernel ? kernel.status : null,
          nb: w.context.model.toJSON()};
}"""


def _state(page) -> dict | None:
    return page.evaluate(_STATE_JS)


def _errors(nb: dict) -> list[str]:
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                tb = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(out.get("traceback", [])))
                found.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}\n{tb[-3000:]}")
    return found


def open_and_run_all(page, lab: Lab, name: str) -> None:
    """Open ``name`` with a kernel made beforehand, Run > Run All Cells, wait until every
    code cell has run and the kernel is idle; fail with the traceback on an error."""
    path = f"{name}.ipynb"
    lab.api("/api/sessions", "POST", {"path": path, "name": path, "type": "notebook",
                                      "kernel": {"name": "python3"}})
    page.goto(f"{lab.url}/lab/tree/{path}?reset&token={lab.token}")
    page.wait_for_function(
        "() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel;"
        " return !!(w && w.sessionContext.isReady && k && k.status === 'idle'"
        " && w.content && w.content.widgets && w.content.widgets.length); }",
        timeout=90_000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-item[data-command='runmenu:run-all']").click()
    deadline = time.monotonic() + RUN_ALL_TIMEOUT_S
    while True:
        state = _state(page)
        nb = state["nb"]
        errors = _errors(nb)
        assert not errors, f"{name}: a cell raised in JupyterLab:\n" + "\n".join(errors)
        code = [c for c in nb["cells"] if c["cell_type"] == "code" and c["source"].strip()]
        if state["status"] == "idle" and all(c.get("execution_count") for c in code):
            return
        assert time.monotonic() < deadline, (
            f"{name}: not every cell ran within {RUN_ALL_TIMEOUT_S} s (kernel {state['status']}, "
            f"{sum(bool(c.get('execution_count')) for c in code)}/{len(code)} cells ran)")
        time.sleep(1)


def find_sliders(page, labels: tuple[str, ...]) -> list:
    """Every ``.widget-slider`` whose label is one of ``labels``, in notebook order."""
    sliders = page.locator(".jp-Notebook .widget-slider")
    found, seen = [], []
    for i in range(sliders.count()):
        slider = sliders.nth(i)
        label = slider.locator(".widget-label").first.inner_text().strip()
        # Labels may be LaTeX ($T$, $\\alpha$) or plain; compare the bare text.
        bare = label.strip("$ ").replace("\\alpha", "α")
        seen.append(label)
        if any(bare == s or re.match(rf"{re.escape(s)}\b", bare) for s in labels):
            found.append(slider)
    assert found, f"no slider labelled {' or '.join(labels)} (sliders seen: {seen})"
    return found


def _widget_area(slider):
    """The output area of the cell that holds the slider: the slider and what it drives."""
    return slider.locator("xpath=ancestor::div[contains(@class, 'jp-OutputArea')][1]")


def snapshot(area) -> dict:
    """What is drawn under the slider: every image's bytes (data URL) and the text."""
    imgs = area.locator(".widget-output img, .jp-OutputArea-output img")
    return {"images": [imgs.nth(i).get_attribute("src") or "" for i in range(imgs.count())],
            "text": area.locator(".widget-output").all_inner_texts(),
            "readouts": area.locator(".widget-readout").all_inner_texts()}


def _shoot(page, area, stem: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    area.scroll_into_view_if_needed()
    area.screenshot(path=str(ARTIFACTS / f"{stem}.png"))
    page.screenshot(path=str(ARTIFACTS / f"{stem}-page.png"))


def move_and_check(page, name: str, labels: tuple[str, ...], slider, stem: str) -> None:
    """Move ``slider`` with the keyboard; the plot or text under it must change."""
    area = _widget_area(slider)
    area.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # let the first plot settle
    before = snapshot(area)
    assert before["images"] or any(t.strip() for t in before["text"]), (
        f"{name}: nothing is drawn under the {labels[0]} slider before it is moved")
    _shoot(page, area, f"{stem}-before")

    handle = slider.locator(".noUi-handle").first
    handle.focus()
    for _ in range(KEY_PRESSES):
        handle.press("ArrowRight")
        page.wait_for_timeout(150)

    deadline = time.monotonic() + REDRAW_TIMEOUT_S
    while True:
        after = snapshot(area)
        state = _state(page)
        settled = state["status"] == "idle"
        changed = after["images"] != before["images"] or after["text"] != before["text"]
        if changed and settled and after["images"] and all(after["images"]):
            break
        if changed and settled and not before["images"]:
            break
        assert time.monotonic() < deadline, (
            f"{name}: moving the {labels[0]} slider (readout {before['readouts']} -> "
            f"{after['readouts']}) did not change the plot or text under it "
            f"within {REDRAW_TIMEOUT_S} s")
        page.wait_for_timeout(300)
    page.wait_for_timeout(500)
    after = snapshot(area)
    _shoot(page, area, f"{stem}-after")
    assert after["readouts"] != before["readouts"], (
        f"{name}: the {labels[0]} slider's readout did not move: {before['readouts']}")
    assert _errors(_state(page)["nb"]) == [], f"{name}: moving {labels[0]} raised"


def check_notebook(browser, lab: Lab, src: Path, sliders) -> None:
    clean_copy(src, lab.root)
    name = src.stem
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    try:
        open_and_run_all(page, lab, name)
        for labels in sliders:
            found = find_sliders(page, labels)
            label = labels[-1] if labels[-1].isascii() else labels[0]  # α -> alpha in file names
            for k, slider in enumerate(found, 1):
                stem = f"{name}-{label}" + (f"-{k}" if len(found) > 1 else "")
                move_and_check(page, name, labels, slider, stem)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{name}-failure.png"))
        raise
    finally:
        context.close()
        for session in lab.api("/api/sessions") or []:  # free the CPU for the next notebook
            lab.api(f"/api/sessions/{session['id']}", "DELETE")


# -- the tests ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.skipif(
        not (NOTEBOOKS / f"{name}.ipynb").exists(),
        reason=f"notebooks/{name}.ipynb does not exist yet")) for name in SLIDERS])
def test_sliders_redraw_in_jupyterlab(browser, lab, name):
    check_notebook(browser, lab, NOTEBOOKS / f"{name}.ipynb", SLIDERS[name])


PLAIN_SLIDER = '''import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

z = np.array([3.0, 1.0, 0.2, -1.0])
T = widgets.FloatSlider(value=1.0, min=0.5, max=10.0, step=0.5, description="T")

def show(T):
    p = np.exp(z / T) / np.exp(z / T).sum()
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(range(len(z)), p)
    ax.set(ylim=(0, 1), title=f"softmax(z / {T})")
    plt.show()
    print(f"largest probability {p.max():.3f}")

widgets.VBox([T, widgets.interactive_output(show, {"T": T})])'''


def test_harness_moves_a_plain_slider(browser, lab, tmp_path):
    """The harness itself, on a tiny ipywidgets notebook (tells a broken harness from a
    broken course notebook)."""
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(PLAIN_SLIDER)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    src = tmp_path / "harness_slider.ipynb"
    nbformat.write(nb, src)
    check_notebook(browser, lab, src, [("T",)])
