"""``python -m linecolor`` = the ``linecolor`` command."""

import sys

from linecolor.cli import main

sys.exit(main())
