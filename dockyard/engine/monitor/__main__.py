import sys

from dockyard.engine.monitor.server import main

sys.exit(main())
