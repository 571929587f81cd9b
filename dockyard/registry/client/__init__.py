"""The registry client: pull, push, login and logout against any distribution-spec registry.

hosts.py        which URL and scheme a registry name means; which registries may use plain HTTP
credentials.py  Docker's config.json (`auths`, credential helpers), honouring DOCKER_CONFIG
auth.py         WWW-Authenticate challenges, the Bearer token flow and a token cache
transport.py    one registry: manifests, verified and resumable blob downloads, uploads with mount and skip
progress.py     progress display: in place on a terminal, plain lines otherwise, Docker JSON messages for the API
pull.py, push.py, login.py   the operations, over the image service
"""
