"""`python -m harness`: the harness command line."""

from harness.cli import main

main()
