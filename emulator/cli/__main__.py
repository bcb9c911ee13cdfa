"""``python -m emulator.cli``: the same as the ``emulator`` command."""

import sys

from . import main

sys.exit(main())
