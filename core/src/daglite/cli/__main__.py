"""`python -m daglite.cli`: the same as the `daglite` command."""

from daglite.cli import main

main()
