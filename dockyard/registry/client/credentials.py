"""Registry credentials in Docker's config.json, so `docker login` and `dockyard login` share them.

    {"auths": {"127.0.0.1:5000": {"auth": base64("user:password")}},
     "credsStore": "pass", "credHelpers": {"gcr.io": "gcloud"}}

The file lives in $DOCKER_CONFIG, else ~/.docker. A registry with a credential helper (credHelpers, else
credsStore) is asked through `docker-credential-<helper> get|store|erase`, as Docker does; the file then
only records an empty entry for it. Other keys of the file are kept as they are.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dockyard.errors import DockyardError, InvalidArgument
from dockyard.registry.client.hosts import credential_key, normalize_server

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    identity_token: str | None = None   # an OAuth2 refresh token, traded at the token endpoint


def config_dir() -> Path:
    value = os.environ.get("DOCKER_CONFIG")
    return Path(value) if value else Path.home() / ".docker"


class CredentialStore:
    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory or config_dir()
        self.path = self.directory / "config.json"

    # --- the file ----------------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        try:
            value = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return {}
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"{self.path} is not valid JSON: {e}") from None
        if not isinstance(value, dict):
            raise InvalidArgument(f"{self.path} must hold a JSON object")
        return value

    def _save(self, value: dict[str, Any]) -> None:
        import tempfile  # here, not at the top: a pull or push only reads the file (~1.5 ms saved)

        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix="config.json.")
        try:
            with os.fdopen(fd, "w") as f:  # mkstemp makes it 0600: the file holds passwords
                json.dump(value, f, indent="\t")
                f.write("\n")
            os.rename(tmp, self.path)
        except BaseException:
            os.unlink(tmp)
            raise

    def _helper(self, config: dict[str, Any], key: str) -> str | None:
        helpers = config.get("credHelpers") or {}
        name = helpers.get(key) or helpers.get(normalize_server(key)) or config.get("credsStore")
        return name or None

    # --- the operations ----------------------------------------------------------------------------------------

    def get(self, server: str) -> Credentials | None:
        key = credential_key(server)
        config = self._load()
        helper = self._helper(config, key)
        if helper:
            return _helper_get(helper, key)
        auths = config.get("auths") or {}
        entry = auths.get(key)
        if entry is None:  # entries written with a scheme or path ("https://host/v1/")
            for other, value in auths.items():
                if normalize_server(other) == normalize_server(key):
                    entry = value
                    break
        if not isinstance(entry, dict):
            return None
        username, password = entry.get("username") or "", entry.get("password") or ""
        if entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"invalid auth entry for {key} in {self.path}") from None
        token = entry.get("identitytoken") or None
        if not username and not token:
            return None
        return Credentials(username, password, token)

    def store(self, server: str, credentials: Credentials) -> None:
        key = credential_key(server)
        config = self._load()
        auths = config.setdefault("auths", {})
        helper = self._helper(config, key)
        if helper:
            _helper_call(helper, "store", json.dumps({"ServerURL": key, "Username": credentials.username,
                                                      "Secret": credentials.identity_token or
                                                      credentials.password}))
            auths[key] = {}
        else:
            entry: dict[str, str] = {
                "auth": base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()}
            if credentials.identity_token:
                entry = {"auth": base64.b64encode(f"{credentials.username}:".encode()).decode(),
                         "identitytoken": credentials.identity_token}
            auths[key] = entry
        self._save(config)

    def erase(self, server: str) -> bool:
        """Forget a registry's credentials; False when there were none."""
        key = credential_key(server)
        config = self._load()
        auths = config.get("auths") or {}
        found = False
        for other in list(auths):
            if other == key or normalize_server(other) == normalize_server(key):
                del auths[other]
                found = True
        helper = self._helper(config, key)
        if helper:
            try:
                _helper_call(helper, "erase", key)
                found = True
            except DockyardError:
                pass
        if found:
            self._save(config)
        return found


def _helper_call(helper: str, action: str, stdin: str) -> str:
    import subprocess  # here, not at the top: most pulls and pushes ask no helper (~1 ms saved)

    program = f"docker-credential-{helper}"
    try:
        proc = subprocess.run([program, action], input=stdin, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise DockyardError(f"credential helper {program} is configured but not installed") from None
    if proc.returncode != 0:
        raise DockyardError(f"{program} {action}: {(proc.stdout or proc.stderr).strip()}")
    return proc.stdout


def _helper_get(helper: str, key: str) -> Credentials | None:
    try:
        out = _helper_call(helper, "get", key)
    except DockyardError as e:
        if "credentials not found" in str(e).lower():
            return None
        raise
    try:
        value = json.loads(out)
    except ValueError:
        raise DockyardError(f"docker-credential-{helper} answered something that is not JSON") from None
    username, secret = value.get("Username", ""), value.get("Secret", "")
    if username == "<token>":
        return Credentials("", "", secret)
    return Credentials(username, secret)
