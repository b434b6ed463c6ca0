"""Run the double as `python -m tanzu_double ...`."""

import sys

from .cli import main

sys.exit(main())
