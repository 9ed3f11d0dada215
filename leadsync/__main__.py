"""``python -m leadsync`` runs the CLI."""

from leadsync.cli import main

main()
