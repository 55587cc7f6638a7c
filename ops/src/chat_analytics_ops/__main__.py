"""``python -m chat_analytics_ops`` runs the CLI (the same as the ``chat-analytics`` script)."""

import sys

from chat_analytics_ops.cli import main

sys.exit(main())
