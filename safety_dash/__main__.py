"""Entry point for ``python -m safety_dash``."""

import sys

from safety_dash.cli import main

sys.exit(main())
