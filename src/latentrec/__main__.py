"""``python -m latentrec``: the command line."""

from latentrec.cli.main import main

main()
