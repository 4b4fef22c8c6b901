"""``python -m wattwatch ...``: the same command line as the ``wattwatch`` script."""

from wattwatch.app.cli import main

if __name__ == "__main__":
    main()
