"""`python -m toolkit` runs the `pulumi-claim` command line."""

from toolkit.cli import main

main()
