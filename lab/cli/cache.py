"""``lab cache``: the package cache every lab on this engine shares (lab/docker/cache.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from lab.cli.base import handled
from lab.cli.output import out, progress

app = typer.Typer(help="The package cache every lab on this machine shares: after one warm-up "
                       "online, labs provision with no network.", no_args_is_help=True)


@app.command()
@handled
def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Whether the cache runs, whether it is online, how much it holds, hits and misses.

    Example:  lab cache status
    """
    from dataclasses import asdict

    from lab.docker.cache import PackageCache
    from lab.docker.engine import docker_client

    client = docker_client()
    try:
        found = PackageCache(client).status()
    finally:
        client.close()
    if as_json:
        out.print_json(json.dumps(asdict(found)))
        return
    table = Table(box=None, show_header=False)
    table.add_row("cache", found.name)
    table.add_row("running", "yes" if found.running else "no")
    table.add_row("volume", found.name if found.volume else "none")
    if found.running:
        table.add_row("mode", "offline: serves what it holds" if found.offline
                      else "online: fetches what it lacks")
        table.add_row("size", f"{(found.size_bytes or 0) / 1e6:.1f} MB")
        traffic = found.traffic
        table.add_row("hits", f"{traffic.hits} ({traffic.served_bytes / 1e6:.1f} MB served)")
        table.add_row("misses", f"{traffic.misses} ({traffic.fetched_bytes / 1e6:.1f} MB "
                                f"fetched from the mirror)")
        table.add_row("errors", str(traffic.errors))
        table.add_row("labs joined", ", ".join(found.networks) or "none")
    out.print(table)
    if not found.running:
        out.print("servers fetch packages from Debian's mirror; `lab cache warm` starts the "
                  "cache and fills it")


@app.command()
@handled
def warm(
    ctx: typer.Context,
    labs: Annotated[list[Path] | None, typer.Argument(
        help="More lab directories to warm through (an exercise's, a course's).")] = None,
) -> None:
    """Start the cache and fill it with what labs install, while online.

    No package list to keep: the base image's Dockerfile is built through the cache (under a
    throwaway tag), and the example lab (and each lab directory given) is copied to a
    throwaway lab, one server per role, provisioned through the cache and destroyed. Run it
    once before a workshop; afterwards labs provision, and the base image builds, with no
    network.

    Example:  lab cache warm exercises/02-servers-as-code/start
    """
    from lab.docker.warm import warm as run

    with progress("lab cache warm") as listener:
        report = run(labs or [], listener)
    for lab, seconds in report.labs:
        out.print(f"warmed through {lab} ({seconds:.1f} s)")
    if report.cache is not None:
        out.print(report.cache.describe())


@app.command()
@handled
def clear(ctx: typer.Context) -> None:
    """Remove the cache's container and its volume (everything it cached).

    Labs keep working: their servers fetch from Debian's mirror until the next warm-up.
    """
    from lab.docker.cache import PackageCache
    from lab.docker.engine import docker_client

    client = docker_client()
    try:
        removed = PackageCache(client).clear()
    finally:
        client.close()
    out.print("removed " + ", ".join(removed) if removed else "no cache to remove")
