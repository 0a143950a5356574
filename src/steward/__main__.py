"""``python -m steward``: the same as the ``steward`` command."""

from steward.cli.app import run

if __name__ == "__main__":
    run()
