"""notebooks/glossary.md: its relative links resolve, and it lists every notebook."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
GLOSSARY = NOTEBOOKS / "glossary.md"
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _links() -> list[str]:
    return LINK.findall(GLOSSARY.read_text(encoding="utf-8"))


def _relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")


def test_glossary_exists_and_has_links():
    assert GLOSSARY.is_file(), f"{GLOSSARY} is missing"
    assert len([t for t in _links() if _relative(t)]) >= 10


def test_relative_links_resolve():
    broken = sorted({t for t in _links() if _relative(t)
                     and not (NOTEBOOKS / t.split("#", 1)[0]).exists()})
    assert not broken, f"glossary.md links to files that do not exist in notebooks/: {broken}"


def test_every_notebook_is_listed():
    linked = {t.split("#", 1)[0] for t in _links() if _relative(t)}
    missing = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb") if p.name not in linked)
    assert not missing, f"add a row linking these notebooks to glossary.md: {missing}"


@pytest.mark.parametrize("english, chinese", [
    ("knowledge distillation", "知识蒸馏"), ("teacher", "教师模型"), ("student", "学生模型"),
    ("soft labels", "软标签"), ("temperature", "温度"), ("hard labels", "硬标签"),
    ("dark knowledge", "暗知识"), ("hint layer", "提示层"), ("attention transfer", "注意力迁移"),
    ("mutual learning", "互学习"), ("quantisation", "量化"), ("offline distillation", "离线蒸馏"),
    ("online distillation", "在线蒸馏"), ("self-distillation", "自蒸馏"),
])
def test_core_terms_have_both_languages(english, chinese):
    rows = [line for line in GLOSSARY.read_text(encoding="utf-8").splitlines()
            if line.startswith("|") and english in line.lower()]
    assert any(chinese in row for row in rows), f"no glossary row with {english!r} and {chinese!r}"


def test_reading_list_has_the_course_papers():
    text = " ".join(GLOSSARY.read_text(encoding="utf-8").split())  # undo line wrapping
    for needle in ("Hinton", "FitNets", "Zagoruyko", "Relational Knowledge Distillation",
                   "Similarity-Preserving", "Deep Mutual Learning", "Born-Again",
                   "Buciluǎ", "Survey", "Rethinking the Inception", "When Does Label Smoothing Help",
                   "Revisiting Knowledge Distillation via Label Smoothing"):
        assert needle in text, f"reading list lacks {needle!r}"
