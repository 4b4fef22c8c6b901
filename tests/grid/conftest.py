"""Grid fixtures: the paper's case5 runs, simulated once per session (they share the OPF cache)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def paper_run():
    from wattwatch.grid.config import builtin
    from wattwatch.grid.simulate import simulate

    return simulate(builtin("paper"), "inprocess", keep_measurements=True)


@pytest.fixture(scope="session")
def accidental_run():
    from wattwatch.grid.config import builtin
    from wattwatch.grid.simulate import simulate

    return simulate(builtin("accidental"), "batch")


@pytest.fixture(scope="session")
def persistent_run():
    from wattwatch.grid.config import builtin
    from wattwatch.grid.simulate import simulate

    return simulate(builtin("persistent"), "batch")


@pytest.fixture(scope="session")
def fdi_run():
    from wattwatch.grid.config import builtin
    from wattwatch.grid.simulate import simulate

    return simulate(builtin("fdi"), "batch", keep_measurements=True)
