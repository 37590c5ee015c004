from __future__ import annotations

from pytest_resumable.cli import main

raise SystemExit(main())
