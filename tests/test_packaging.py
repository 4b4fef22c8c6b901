"""pyproject.toml as a build backend reads it. (adv) `license = { text = "MIT" }` made `make demo` on a
fresh machine print three setuptools warnings, each saying that from 2027-02-18 such a project will no
longer build: the SPDX string form needs setuptools >= 77 in the build requirements."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_licence_is_an_spdx_string_and_the_build_takes_a_setuptools_that_reads_it():
    doc = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert doc["project"]["license"] == "MIT"
    need = next(r for r in doc["build-system"]["requires"] if r.startswith("setuptools"))
    m = re.fullmatch(r"setuptools>=(\d+)(\.\d+)*", need.replace(" ", ""))
    assert m and int(m.group(1)) >= 77, need
