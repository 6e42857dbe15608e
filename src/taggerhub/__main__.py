"""``python -m taggerhub`` runs the ``taggerhub`` command."""

import sys

from .cli import main

sys.exit(main())
