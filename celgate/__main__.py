"""`python -m celgate` is the `celgate` command."""

from celgate.cli import main

raise SystemExit(main())
