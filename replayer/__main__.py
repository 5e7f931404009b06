"""`python -m replayer` entry point."""

from replayer.cli import main

raise SystemExit(main())
