"""``python -m unnas.findings``: see :mod:`unnas.findings.cli`."""

import sys

from unnas.findings.cli import main

sys.exit(main())
