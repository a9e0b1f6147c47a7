"""tools.seeds: a notebook run once per KDTEACH_SEED, failures named by seed."""
from __future__ import annotations

import nbformat
import pytest

from tools import seeds


def test_parse_seeds():
    assert seeds.parse_seeds("0-4") == [0, 1, 2, 3, 4]
    assert seeds.parse_seeds("0,3, 7") == [0, 3, 7]
    assert seeds.parse_seeds("2-3,9") == [2, 3, 9]
    for bad in ("", "a-b", "-1", "3-x"):
        with pytest.raises(ValueError, match="--seeds"):
            seeds.parse_seeds(bad)


def test_each_seed_reaches_the_notebook_and_a_seed_that_breaks_a_check_is_named(tmp_path):
    # A check that holds for even seeds only: the table must show which seed failed, and why.
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from kdteach import config\n"
        "SEED = config.base_seed()\n"
        "assert SEED % 2 == 0, f'odd seed {SEED}'")])
    nbformat.write(nb, tmp_path / "97_parity.ipynb")
    report = seeds.run(["97_parity"], [0, 1], src=tmp_path, log=lambda *a, **k: None)
    row = report["rows"][0]["seeds"]
    assert row["0"]["passed"] and not row["1"]["passed"]
    table = seeds.markdown(report)
    assert "| `97_parity` | passed | **failed** |" in table and "seed 1" in table


def test_out_a_json_path_or_a_stem_and_a_bad_stem_refused_before_any_run(tmp_path, monkeypatch):
    ran = []
    fake = {"profile": "quick", "seeds": [0], "rows": []}
    monkeypatch.setattr(seeds, "run", lambda names, chosen: ran.append(chosen) or fake)
    target = tmp_path / "sub" / "seeds.json"
    seeds.main(["--seeds", "0", "--out", str(target)])
    assert target.exists() and ran == [[0]]
    with pytest.raises(ValueError, match="plain file stem"):
        seeds.main(["--seeds", "0", "--out", str(tmp_path / "no_suffix")])
    assert ran == [[0]], "a bad --out must be refused before the notebooks run"
