"""``python -m unnas``: the ``unnas`` command."""

import sys

from unnas.cli import main

if __name__ == "__main__":
    sys.exit(main())
