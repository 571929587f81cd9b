"""Distribution: a registry client (pull, push, login) and a registry server (`dockyard registry serve`)."""
