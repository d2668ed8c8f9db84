"""The thin wrapper every stage module runs under: user errors become one line and exit 1."""
from __future__ import annotations

import sys
from collections.abc import Callable

from carbrands.errors import UserError


def run(main: Callable[[], None]) -> None:
    """Call a stage's main(); a UserError (bad param, unusable data, missing weights)
    is printed as one line naming what to fix, and the stage exits with status 1."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
