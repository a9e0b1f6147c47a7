"""The static course site (``make book``): built here for ``00_welcome`` and one small
slider notebook, not the whole course (that is ``make book``'s job, not CI's).

Checks the pages, the index made from the README's course map, the links between pages,
that nothing is loaded from the network, and — in Chromium, where installed — that the
slider and the plot under it are drawn from the locally served widget scripts.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from tools import publish

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts" / "book"

SLIDER_NOTEBOOK = '''import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

z = np.array([3.0, 1.0, 0.2, -1.0])
T = widgets.FloatSlider(value=2.0, min=0.5, max=10.0, step=0.5, description="T")

def show(T):
    p = np.exp(z / T) / np.exp(z / T).sum()
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(range(len(z)), p)
    ax.set(ylim=(0, 1), title=f"softmax(z / {T})")
    plt.show()

widgets.VBox([T, widgets.interactive_output(show, {"T": T})])'''


def _sources(tmp: Path) -> Path:
    src = tmp / "notebooks"
    src.mkdir()
    shutil.copy(ROOT / "notebooks" / "00_welcome.ipynb", src)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 98 · Slider page\n\nBack to [the welcome](00_welcome.ipynb)."
                                      "\n\n$$p_i = \\frac{e^{z_i/T}}{\\sum_j e^{z_j/T}}$$"),
        nbformat.v4.new_code_cell(SLIDER_NOTEBOOK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "98_slider.ipynb")
    (src / "glossary.md").write_text("# Glossary\n\n| term | in |\n|---|---|\n"
                                     "| temperature $T$ | [98](98_slider.ipynb) |\n")
    return src


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> Path:
    return _sources(tmp_path_factory.mktemp("book"))


@pytest.fixture(scope="module")
def site(sources) -> publish.Site:
    return publish.build_site(sources, sources.parent / "site", timeout=300)


def _external_loads(html: str) -> list[str]:
    """URLs the page would fetch from the network: script/link/img sources, and the
    widget renderer's address."""
    urls = re.findall(r'<(?:script|img|iframe)[^>]*\ssrc="([^"]+)"', html)
    urls += re.findall(r'<link[^>]*\shref="([^"]+)"', html)
    urls += re.findall(r"widgetRendererSrc = '([^']+)'", html)
    return [u for u in urls if re.match(r"(https?:)?//", u)]


def test_pages_and_index(site):
    assert [p.html.name for p in site.pages] == [
        "00_welcome.html", "98_slider.html", "glossary.html"]
    index = site.index.read_text(encoding="utf-8")
    # The README's course map, with a link where a page was built.
    assert '<a href="00_welcome.html">Welcome' in index
    assert "Hinton KD" in index and "(not on this site)" in index
    assert '<a href="98_slider.html">98 · Slider page</a>' in index
    welcome = (site.out / "00_welcome.html").read_text(encoding="utf-8")
    assert "00 · Welcome to kdteach" in welcome
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', welcome)) >= 2, "plots missing"
    assert "Not answered yet" in welcome  # the exercise ran, unanswered
    assert "celltag_solution" in welcome and "kd-solution" in welcome  # collapsed by script
    assert 'href="index.html"' in welcome and 'href="98_slider.html"' in welcome  # navigation
    # Markdown pages (the glossary) too, linked from the course map's appendix row.
    assert re.search(r'<a href="glossary.html">Appendix: glossary', index)
    assert 'href="98_slider.html"' in (site.out / "glossary.html").read_text(encoding="utf-8")
    slider = (site.out / "98_slider.html").read_text(encoding="utf-8")
    assert 'href="00_welcome.html"' in slider and "00_welcome.ipynb" not in slider


def test_site_loads_nothing_from_the_network(site):
    for page in [site.index, *(p.html for p in site.pages)]:
        html = page.read_text(encoding="utf-8")
        assert _external_loads(html) == [], f"{page.name} loads from the network"
    for local in re.findall(r'src="(_static/[^"?]+)', (site.out / "98_slider.html").read_text()):
        assert (site.out / local).is_file(), f"{local} is referenced but missing"


def test_widgets_are_drawn_from_local_scripts_or_explained(site):
    html = (site.out / "98_slider.html").read_text(encoding="utf-8")
    if {"widgets", "requirejs"} <= set(site.scripts):
        assert (site.out / "_static/widgets/embed-amd.js").is_file()
        assert (site.out / "_static/require.js").is_file()
        assert "application/vnd.jupyter.widget-state+json" in html
        assert "widgetRendererSrc = '_static/widgets/embed-amd.js'" in html
        assert publish.SAVED_WIDGET_NOTE[:40] in html
    else:  # npm unavailable: a note instead of a blank widget
        assert publish.WIDGET_NOTE[:40] in html
        assert "application/vnd.jupyter.widget-state+json" not in html


def test_offline_build_explains_the_sliders(sources, tmp_path):
    """Without the npm scripts the site still builds, and says where sliders work."""
    site = publish.build_site(sources, tmp_path / "site", ["98_slider"], timeout=300,
                              vendor=tmp_path / "no-vendor", fetch=False)
    assert site.scripts == {}
    html = site.pages[0].html.read_text(encoding="utf-8")
    assert publish.WIDGET_NOTE[:40] in html
    assert "application/vnd.jupyter.widget-state+json" not in html
    assert "MathJax.js" not in html and _external_loads(html) == []


def test_sliders_render_in_chromium(site):
    """Open the pages from disk in headless Chromium: the slider and its plot are drawn,
    the equations typeset, and no request leaves the machine."""
    if not {"widgets", "requirejs", "mathjax"} <= set(site.scripts):
        pytest.skip("the npm scripts could not be fetched (offline?); the site shows notes instead")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    chromium = next((c for c in (os.environ.get("KDTEACH_CHROMIUM"), "/usr/bin/chromium",
                                 shutil.which("chromium")) if c and os.access(c, os.X_OK)), None)
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            requests, errors = [], []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((site.out / "98_slider.html").as_uri())
            page.locator(".widget-slider").first.wait_for(timeout=30_000)
            page.locator(".widget-output img").first.wait_for(timeout=30_000)
            page.locator(".MathJax_CHTML").first.wait_for(timeout=30_000)
            assert page.locator(".widget-readout").first.inner_text().strip() == "2.00"
            page.screenshot(path=str(ARTIFACTS / "98_slider.png"), full_page=True)
            page.goto(site.index.as_uri())
            page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []


TRAINING_CELL = '''import torch
from kdteach import models, train

torch.manual_seed(0)
x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
history = train.fit(models.hinton_student(), (x, y), epochs=2, batch_size=32, device="cpu")
print(f"final loss {history.last['train_loss']:.3f}")'''


def test_training_cells_leave_no_progress_bar_on_the_page(tmp_path, monkeypatch):
    """In a kernel tqdm's bar is a widget: on the site it became a stale bar with a "saved
    view of an interactive widget" note. The site's kernels run with KDTEACH_PROGRESS=0,
    so a training cell shows its printout only, while a real slider keeps its note."""
    for name in ("KDTEACH_PROGRESS", "CI"):  # either would hide the bar anyway
        monkeypatch.delenv(name, raising=False)
    src = tmp_path / "notebooks"
    src.mkdir()
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# 97 · Training page"),
        nbformat.v4.new_code_cell(TRAINING_CELL),
        nbformat.v4.new_code_cell(SLIDER_NOTEBOOK)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, src / "97_training.ipynb")
    # Its cells take seconds; a short timeout bounds an occasional nbclient stall after
    # widget cells (once seen lasting the whole cell timeout) to 2 minutes instead of 5.
    site = publish.build_site(src, tmp_path / "site", ["97_training"], timeout=120,
                              vendor=tmp_path / "no-vendor", fetch=False)
    (page,) = site.pages
    html = page.html.read_text(encoding="utf-8")
    assert "final loss" in html  # the training cell ran
    assert page.widgets == 1, f"{page.widgets} widget views: a progress bar is on the page"
    assert html.count(publish.WIDGET_NOTE[:40]) == 1  # the slider's, after the training output
    assert html.index("final loss") < html.index(publish.WIDGET_NOTE[:40])
    assert "KDTEACH_PROGRESS" not in os.environ  # set for the kernels only


def test_make_book_runs_the_publisher():
    if shutil.which("make") is None:
        pytest.skip("make is not on PATH")
    proc = subprocess.run(["make", "-n", "-C", str(ROOT), "book"], capture_output=True,
                          text=True, env={**os.environ, "MAKEFLAGS": ""})
    assert proc.returncode == 0, proc.stderr
    assert "-m tools.publish book --out build/site" in proc.stdout
