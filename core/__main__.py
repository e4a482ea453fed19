"""python -m core: the sos-stylize command line."""

import sys

from core.cli import main

sys.exit(main())
