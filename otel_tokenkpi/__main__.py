"""``python -m otel_tokenkpi``: the ``otel-tokenkpi`` command."""

from .cli import main

raise SystemExit(main())
