"""``python -m ensemble`` runs the command line."""

from ensemble.cli import main

raise SystemExit(main())
