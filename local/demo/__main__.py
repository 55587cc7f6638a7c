"""``python -m local.demo`` (``make demo``): see :mod:`local.demo.run`."""

import sys

from local.demo.run import main

sys.exit(main())
