"""``python -m speechrnn`` runs the command line."""

import sys

from speechrnn.cli import main

sys.exit(main())
