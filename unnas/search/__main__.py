"""``python -m unnas.search``: the same command as ``unnas search`` (:mod:`unnas.search_cli`)."""

import sys

from unnas.search_cli import main

if __name__ == "__main__":
    sys.exit(main())
