"""``python -m conveyor``: the same as the ``conveyor`` command (used to start backends detached)."""

from conveyor.cli.main import main

main()
