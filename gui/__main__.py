"""``python -m gui``: the desktop app from a checkout, the same as the ``speechrnn-gui`` command."""

import sys

from gui.app import main

if __name__ == "__main__":
    sys.exit(main())
