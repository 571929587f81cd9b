"""System commands: inspect (any object), info, version, system prune."""

from __future__ import annotations

import os
import platform
import sys

from dockyard import API_VERSION, __version__
from dockyard.cli.flags import ArgumentParser
from dockyard.cli.output import human_size, print_formatted
from dockyard.errors import NotFound

OBJECT_TYPES = ("container", "image", "volume")


def inspect_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="NAME|ID")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes if the type is container")
    p.add_argument("--type", choices=OBJECT_TYPES, help="Return JSON for specified type")


def _find(ctx, name: str, kind: str | None, size: bool = False):
    """The first object of any type, in Docker's order (container, image, volume), with this name."""
    if kind in (None, "container"):
        from dockyard.engine.container_views import inspect as inspect_container

        record = ctx.engine.containers.records.lookup(name)
        if record is not None:
            return inspect_container(ctx.engine, ctx.engine.containers.refresh(record), size)
    if kind in (None, "image"):
        from dockyard.engine.image_views import inspect as inspect_image

        service = ctx.engine.images
        image = service.records.lookup(name)
        if image is not None:
            return inspect_image(service, image)
    if kind in (None, "volume"):
        volume = ctx.engine.volumes.find(name)
        if volume is not None:
            return volume
    raise NotFound(f"No such object: {name}")


def inspect_each(names: list[str], find, fmt: str | None, ctx) -> int:
    """Print what `find` returns for each name (JSON list or --format); report the missing ones; exit 1 if any."""
    from dockyard.cli.image_cmds import print_inspect

    found, status = [], 0
    for name in names:
        try:
            found.append(find(name))
        except NotFound as e:
            status = 1
            sys.stdout.flush()
            sys.stderr.write(f"Error: {e}\n")
    print_inspect(found, fmt, ctx)
    return status


def inspect(args, ctx) -> int:
    return inspect_each(args.names, lambda name: _find(ctx, name, args.type, args.size), args.format, ctx)


def container_inspect_parser(p: ArgumentParser) -> None:
    p.add_argument("names", nargs="+", metavar="CONTAINER")
    p.add_argument("-f", "--format", help="Format output using a custom template")
    p.add_argument("-s", "--size", action="store_true", help="Display total file sizes")


def container_inspect(args, ctx) -> int:
    from dockyard.engine.container_views import inspect as inspect_container

    return inspect_each(args.names, lambda name: inspect_container(ctx.engine, ctx.engine.containers.get(name),
                                                                    args.size), args.format, ctx)


def _info(ctx) -> dict:
    engine = ctx.engine
    images = engine.images.records.all()
    uname = os.uname()
    cgroup_version = "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1"
    return {
        "ID": "",
        "Containers": 0, "ContainersRunning": 0, "ContainersPaused": 0, "ContainersStopped": 0,
        "Images": len(images),
        "Driver": engine.store.snapshots.driver,
        "DockerRootDir": str(engine.root),
        "CgroupVersion": cgroup_version,
        "CgroupDriver": "cgroupfs",
        "KernelVersion": uname.release,
        "OperatingSystem": _os_name(),
        "OSType": "linux",
        "Architecture": uname.machine,
        "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "Name": uname.nodename,
        "ServerVersion": __version__,
        "IndexServerAddress": "https://index.docker.io/v1/",
    }


def _os_name() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def info_parser(p: ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="Format output using a custom template")


def info(args, ctx) -> int:
    data = _info(ctx)
    if args.format:
        print_formatted([data], args.format, {}, ctx.stdout)
        return 0
    out = ctx.stdout
    out.write(f"Client:\n Version:    {__version__}\n Context:    default\n\nServer:\n")
    out.write(f" Containers: {data['Containers']}\n  Running: {data['ContainersRunning']}\n"
              f"  Paused: {data['ContainersPaused']}\n  Stopped: {data['ContainersStopped']}\n")
    out.write(f" Images: {data['Images']}\n Server Version: {data['ServerVersion']}\n"
              f" Storage Driver: {data['Driver']}\n Cgroup Driver: {data['CgroupDriver']}\n"
              f" Cgroup Version: {data['CgroupVersion']}\n Kernel Version: {data['KernelVersion']}\n"
              f" Operating System: {data['OperatingSystem']}\n OSType: {data['OSType']}\n"
              f" Architecture: {data['Architecture']}\n CPUs: {data['NCPU']}\n"
              f" Total Memory: {human_size(data['MemTotal'])}\n Name: {data['Name']}\n"
              f" Docker Root Dir: {data['DockerRootDir']}\n")
    return 0


def version_parser(p: ArgumentParser) -> None:
    p.add_argument("-f", "--format", help="Format output using a custom template")


def version(args, ctx) -> int:
    os_arch = f"linux/{platform.machine()}"
    component = {"Version": __version__, "ApiVersion": API_VERSION, "Os": "linux", "Arch": platform.machine(),
                 "PythonVersion": platform.python_version()}
    data = {"Client": dict(component), "Server": {**component, "MinAPIVersion": "1.12"}}
    if args.format:
        print_formatted([data], args.format, {}, ctx.stdout)
        return 0
    for title, values in (("Client", data["Client"]), ("Server", data["Server"])):
        ctx.stdout.write(f"{title}:\n Version:           {values['Version']}\n"
                         f" API version:       {values['ApiVersion']}\n"
                         f" Python version:    {values['PythonVersion']}\n OS/Arch:           {os_arch}\n")
        if title == "Client":
            ctx.stdout.write("\n")
    return 0


def system_prune_parser(p: ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="Remove all unused images not just dangling ones")
    p.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    p.add_argument("--filter", action="append", help="Provide filter values")


def system_prune(args, ctx) -> int:
    from dockyard.cli.image_cmds import prune

    return prune(args, ctx)
