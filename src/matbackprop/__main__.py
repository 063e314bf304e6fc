"""``python -m matbackprop``: the same as the ``matbackprop`` command."""

from matbackprop.cli import main

raise SystemExit(main())
