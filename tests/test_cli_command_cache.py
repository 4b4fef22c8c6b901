"""The tests build a Typer app's Click command once per process (tests/conftest.py patches
``typer.testing._get_command``). The cache must be invisible: an app that gains a command, a
sub-app or a callback after its first run is built again, as Typer builds it on every call."""

from __future__ import annotations

import typer
from typer.testing import CliRunner


def test_an_app_that_gains_a_command_after_its_first_run_is_built_again():
    app = typer.Typer(add_completion=False)

    @app.command()
    def one():
        print("one")

    @app.command()
    def two():
        print("two")

    runner = CliRunner()
    assert runner.invoke(app, ["one"]).output == "one\n"

    @app.command()
    def three():
        print("three")

    res = runner.invoke(app, ["three"])
    assert res.exit_code == 0 and res.output == "three\n", res.output

    sub = typer.Typer()

    @sub.command()
    def inner():
        print("inner")

    @sub.command()
    def other():
        print("other")

    app.add_typer(sub, name="sub")
    res = runner.invoke(app, ["sub", "inner"])
    assert res.exit_code == 0 and res.output == "inner\n", res.output

    @sub.command()
    def late():
        print("late")

    res = runner.invoke(app, ["sub", "late"])
    assert res.exit_code == 0 and res.output == "late\n", res.output


def test_the_wattwatch_app_is_built_once():
    """The point of the cache: the same app object gives the same Click command."""
    import typer.testing

    from wattwatch.app.cli import app

    if typer.testing._get_command.__module__ == "typer.testing":   # another Typer: no cache to check
        return
    assert typer.testing._get_command(app) is typer.testing._get_command(app)
