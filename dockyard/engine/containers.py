"""The container service: create, inspect, list and remove containers; start and stop them via the monitor.

A container is described the way the Docker Engine API describes it (Config, HostConfig...), so the CLI and
the API server hand the engine the same `create` body. Creating one writes its record, its writable
snapshot, its volumes and its /etc files; nothing runs until `start`, which the monitor does, since the
monitor must be the parent of every container process (see engine/monitor).
"""

from __future__ import annotations

import os
import time

from dockyard.engine.container_store import ContainerRecord, ContainerStore
from dockyard.errors import Conflict, InvalidArgument, NotFound
from dockyard.fsutil import remove_tree
from dockyard.timeutil import rfc3339

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
RESTART_POLICIES = ("", "no", "always", "on-failure", "unless-stopped")
HOSTS_TEMPLATE = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
                  "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def new_state() -> dict[str, Any]:
    return {"Status": "created", "Running": False, "Paused": False, "Restarting": False, "OOMKilled": False,
            "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "", "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME}


def merge_env(image_env: list[str], env: list[str]) -> list[str]:
    merged: dict[str, str] = {}
    for item in list(image_env) + list(env):
        key, _, _ = item.partition("=")
        merged.pop(key, None)
        merged[key] = item
    return list(merged.values())


class ContainerService:
    def __init__(self, engine) -> None:
        self.engine = engine
        self.records = ContainerStore(engine.db)
        self.dir = os.path.join(engine.root_dir, "containers")

    @property
    def store(self):
        return self.engine.store  # built on first use: listing containers needs only the database

    # --- paths ------------------------------------------------------------------------------------------------

    def container_dir(self, container_id: str) -> str:
        return os.path.join(self.dir, container_id)

    def bundle_dir(self, container_id: str) -> str:
        return os.path.join(self.engine.run_root, "containers", container_id)

    # --- reading ----------------------------------------------------------------------------------------------

    def get(self, name_or_id: str) -> ContainerRecord:
        return self.refresh(self.records.get(name_or_id))

    def all(self) -> list[ContainerRecord]:
        monitor_alive = self.engine.monitor_alive()
        return [self.refresh(r, monitor_alive) for r in self.records.all()]

    def refresh(self, record: ContainerRecord, monitor_alive: bool | None = None) -> ContainerRecord:
        """Keep `ps` truthful: a container recorded as running whose monitor is gone has died with it."""
        state = record.state
        if not state.get("Running"):
            return record
        if monitor_alive is None:
            monitor_alive = self.engine.monitor_alive()
        if monitor_alive:
            # It records every exit of its containers, a moment after the process goes (it may not have reaped
            # it yet): marking it here would race that, and write a made-up exit code over the real one.
            return record
        pid = state.get("Pid", 0)

        def mark_dead(data: dict) -> None:
            if data["State"].get("Running") and data["State"].get("Pid", 0) == pid:  # (not a later start)
                data["State"].update(Status="exited", Running=False, Paused=False, Restarting=False, Pid=0,
                                     ExitCode=137, FinishedAt=rfc3339(),
                                     Error="the container's monitor stopped; the container was killed")
        return self.records.update(record.id, mark_dead)

    # --- creating ---------------------------------------------------------------------------------------------

    def create(self, body: dict[str, Any], name: str | None = None) -> ContainerRecord:
        from dockyard.engine.names import check_name, random_name

        image_name = body.get("Image")
        if not image_name:
            raise InvalidArgument("Config cannot be empty in order to create a container")
        images = self.engine.images
        try:
            image = images.resolve(image_name)
        except NotFound:
            raise NotFound(f"No such image: {_familiar(image_name)}") from None
        host = dict(body.get("HostConfig") or {})
        _validate_host_config(host)
        networks = self.engine.networks.endpoints_for_create(host, body.get("NetworkingConfig"))
        if name is not None:
            name = check_name(name)
            existing = self.records.lookup(name)
            if existing is not None and existing.name == name:
                from dockyard.engine.container_store import name_conflict

                raise name_conflict(name, existing.id)
        else:
            name = random_name({r.name for r in self.records.all()})
        image_config = images.config_of(image).config
        config = _merge_config(body, image_config, image_name)
        container_id = os.urandom(32).hex()
        if not config.get("Hostname"):
            config["Hostname"] = container_id[:12]
        args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
        if not args:
            raise InvalidArgument("No command specified")
        mounts = self._plan_mounts(host, config)  # validates before anything is made
        cdir = self.container_dir(container_id)
        snapshot_key = f"container/{container_id}"
        made_volumes: list[str] = []
        try:
            self.store.snapshots.prepare(snapshot_key, image.chain_id)
            for mount in mounts:
                if mount["Type"] == "volume":
                    existed = self.engine.volumes.find(mount.get("Name") or "") is not None
                    volume = self.engine.volumes.create(mount.get("Name"))
                    if not existed:
                        made_volumes.append(volume["Name"])
                    mount.update(Name=volume["Name"], Source=volume["Mountpoint"])
            os.makedirs(cdir, mode=0o700)
            files = self._write_etc_files(cdir, config)
            now = time.time()
            data = {
                "Id": container_id, "Created": rfc3339(now), "Path": args[0], "Args": args[1:],
                "State": new_state(), "Image": image.id, **files,
                "LogPath": os.path.join(cdir, f"{container_id}-json.log"), "Name": "/" + name,
                "RestartCount": 0, "Driver": self.store.snapshots.driver, "Platform": "linux", "MountLabel": "",
                "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host,
                "Mounts": mounts, "Config": config,
                "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "Networks": networks},
            }
            self.records.add(ContainerRecord(container_id, name, image.id, now, data))
        except BaseException:
            self._discard(container_id, snapshot_key, made_volumes)
            raise
        return self.records.get(container_id)

    def _discard(self, container_id: str, snapshot_key: str, volumes: list[str]) -> None:
        if self.store.snapshots.find(snapshot_key) is not None:
            self.store.snapshots.remove(snapshot_key)
        for volume in volumes:
            self.engine.volumes.remove(volume)
        remove_tree(self.container_dir(container_id))

    def _write_etc_files(self, cdir: str, config: dict[str, Any]) -> dict[str, str]:
        hostname = config["Hostname"]
        paths = {"HostnamePath": os.path.join(cdir, "hostname"), "HostsPath": os.path.join(cdir, "hosts"),
                 "ResolvConfPath": os.path.join(cdir, "resolv.conf")}
        with open(paths["HostnamePath"], "w") as f:
            f.write(hostname + "\n")
        with open(paths["HostsPath"], "w") as f:
            f.write(HOSTS_TEMPLATE)
        with open(paths["ResolvConfPath"], "w") as f:
            f.write(_resolv_conf())
        return paths

    def _plan_mounts(self, host: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
        """Binds, Mounts, Tmpfs-free volume list and the image's VOLUMEs, as inspect's Mounts."""
        from dockyard.engine.mounts import parse_bind, parse_mount

        planned: dict[str, dict[str, Any]] = {}
        for bind in host.get("Binds") or []:
            m = parse_bind(bind)
            planned[m["Destination"]] = m
        for spec in host.get("Mounts") or []:
            m = parse_mount(spec)
            planned[m["Destination"]] = m
        for path in (config.get("Volumes") or {}):
            if path not in planned and path not in (host.get("Tmpfs") or {}):
                planned[path] = {"Type": "volume", "Name": None, "Source": "", "Destination": path,
                                 "Driver": "local", "Mode": "", "RW": True, "Propagation": ""}
        return list(planned.values())

    # --- lifecycle (through the monitor) ----------------------------------------------------------------------

    def remove(self, name_or_id: str, force: bool = False, volumes: bool = False) -> str:
        record = self.get(name_or_id)
        if record.running:
            if not force:
                raise Conflict(f"You cannot remove a running container {record.id}. Stop the container before "
                               f"attempting removal or force remove")
            self.engine.monitor().request({"op": "kill", "id": record.id, "signal": "SIGKILL", "wait": True})
            record = self.get(record.id)
        self.destroy(record, volumes)
        return record.id

    def destroy(self, record: ContainerRecord, volumes: bool) -> None:
        """Remove everything a stopped container has: record, writable layer, files, anonymous volumes."""
        from dockyard import linux

        linux.umount_if_mounted(os.path.join(self.bundle_dir(record.id), "rootfs"))
        remove_tree(self.bundle_dir(record.id))
        self.records.delete(record.id)
        key = f"container/{record.id}"
        if self.store.snapshots.find(key) is not None:
            self.store.snapshots.remove(key)
        remove_tree(self.container_dir(record.id))
        if volumes:
            for mount in record.data.get("Mounts") or []:
                name = mount.get("Name")
                if mount["Type"] == "volume" and name and self.engine.volumes.is_anonymous(name):
                    try:
                        self.engine.volumes.remove(name)
                    except Conflict:
                        pass  # another container still uses it

    def volume_users(self, volume_name: str) -> list[str]:
        return [r.id for r in self.records.all()
                if any(m.get("Name") == volume_name for m in r.data.get("Mounts") or [])]


def _familiar(name: str) -> str:
    from dockyard.image import reference

    try:
        return reference.parse(name).familiar
    except Exception:  # noqa: BLE001 - an id or a bad name: show it as given
        return name


def _resolv_conf() -> str:
    """The host's resolv.conf, without loopback name servers (unreachable from a container's network)."""
    try:
        with open("/etc/resolv.conf") as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    kept = [line for line in lines if not (line.startswith("nameserver") and
                                           line.split()[1:2] and line.split()[1].startswith(("127.", "::1")))]
    return "\n".join(kept) + "\n"


def _merge_config(body: dict[str, Any], image: dict[str, Any], image_name: str) -> dict[str, Any]:
    """The container's Config: the request over the image's config, as Docker merges them."""
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    config["Image"] = image_name
    config["Env"] = merge_env(image.get("Env") or [], body.get("Env") or [])
    if body.get("Entrypoint") is not None:
        config["Entrypoint"] = body["Entrypoint"] or None
        config["Cmd"] = body.get("Cmd") or None  # a new entrypoint drops the image's cmd
    else:
        config["Entrypoint"] = image.get("Entrypoint")
        config["Cmd"] = body.get("Cmd") or image.get("Cmd")
    for key in ("WorkingDir", "User", "StopSignal", "Shell", "Healthcheck", "OnBuild"):
        if not config.get(key) and image.get(key):
            config[key] = image[key]
    config["Labels"] = {**(image.get("Labels") or {}), **(body.get("Labels") or {})}
    exposed = {**(image.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})}
    if exposed:
        config["ExposedPorts"] = exposed
    volumes = {**(image.get("Volumes") or {}), **(body.get("Volumes") or {})}
    config["Volumes"] = volumes or None
    for key, default in (("Tty", False), ("OpenStdin", False), ("StdinOnce", False), ("AttachStdin", False),
                         ("AttachStdout", False), ("AttachStderr", False), ("Domainname", ""), ("Hostname", "")):
        config.setdefault(key, default)
    return config


def _validate_host_config(host: dict[str, Any]) -> None:
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name not in RESTART_POLICIES:
        raise InvalidArgument(f"invalid restart policy '{name}'")
    if policy.get("MaximumRetryCount") and name != "on-failure":
        raise InvalidArgument("maximum retry count cannot be used with restart policy '" + name + "'")
    if host.get("AutoRemove") and name not in ("", "no"):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    for key in ("Memory", "MemorySwap", "NanoCpus", "CpuShares", "ShmSize"):
        value = host.get(key)
        if value is not None and not isinstance(value, int):
            raise InvalidArgument(f"invalid {key}: {value!r} is not an integer")
    if host.get("Memory") and 0 < host["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if host.get("MemorySwap") and host.get("Memory") and 0 < host["MemorySwap"] < host["Memory"]:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, see usage")
    if host.get("NanoCpus") and host["NanoCpus"] > (os.cpu_count() or 1) * 10**9:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {os.cpu_count()}.00, as there are only "
                              f"{os.cpu_count()} CPUs available")
    if host.get("Runtime") not in (None, "", "dockyard", "runc"):
        raise InvalidArgument(f"unknown or invalid runtime name: {host['Runtime']}")
