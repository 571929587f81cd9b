"""`dockyard registry serve`: an OCI Distribution Spec v1.1 registry.

errors.py   the spec's error codes and JSON bodies
storage.py  content-addressed blobs shared by all repositories, per-repository links, uploads, gc
auth.py     htpasswd (bcrypt) users, Basic auth, and a token server for the Docker Bearer flow
routes.py   the HTTP endpoints (aiohttp)
app.py      building, starting and stopping the server
"""
