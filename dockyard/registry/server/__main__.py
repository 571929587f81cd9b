"""`python3 -m dockyard.registry.server serve|gc ...`: the registry without the rest of the CLI.

This is what a registry container image runs, and what tests start as a real process.
"""

from __future__ import annotations

import sys

from dockyard.registry.server.cli import main

sys.exit(main())
