"""``python -m userns``: the same as the ``userns`` command."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
