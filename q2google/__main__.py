"""Run the CLI as ``python -m q2google``."""

from q2google.cli import main

main()
