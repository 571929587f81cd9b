from dockyard.runtime.cli import run

run()
