"""``python -m vidwatch.cli``: the same as the ``vidwatch`` command."""

import sys

from vidwatch.cli.main import main

sys.exit(main())
