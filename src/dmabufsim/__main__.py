"""``python -m dmabufsim``: the ``dmabufsim`` command line (``cli.main``)."""

import sys

from .cli import main

sys.exit(main())
