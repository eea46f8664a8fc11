"""``lab aws``: what only the aws target has, for whoever pays for the account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from lab.cli.base import current, handled, lab_config
from lab.cli.output import err, out, progress
from lab.errors import ConfigError

if TYPE_CHECKING:
    from lab.config import LabConfig

app = typer.Typer(help="AWS housekeeping: remove what lab made and forgot.",
                  no_args_is_help=True)


@app.command("sweep")
@handled
def sweep(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(
        help="The region to sweep (default: AWS_REGION, or the profile's).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Remove nothing: list what lab made in the region now, expired or "
                          "not, per lab, and about what it costs an hour.")] = False,
) -> None:
    """Remove every lab-made resource of a region whose lab.expires has passed, whatever
    lab made it: the instructor's end-of-day command for a whole class.

    Instances, load balancers, target groups, listeners, launch templates, security groups,
    key pairs, AMIs and their snapshots, found by tag, each service asked itself.

    Run inside a lab, it sweeps the lab's region (its `aws.region`) by default and writes
    the sweep in the lab's logbook (a course's grader reads it there). With --dry-run it
    shows what bills now (an expired lab's instances are gone, its load balancer is not)
    and writes nothing.

    Example:  lab aws sweep --region eu-west-1

    Example:  lab aws sweep --dry-run   (what bills now; nothing removed)
    """
    from lab.aws.resources import sweep as run
    from lab.aws.resources import sweep_in_lab

    config = _lab_here(ctx)
    if dry_run:
        _show_holdings(config, region)
        return
    with progress("lab aws sweep") as listener:
        found = (run(region, on_event=listener) if config is None
                 else sweep_in_lab(config, region, listener))
    if found.empty:
        out.print("nothing lab made has expired")
        return
    for kind, count in found.counts().items():
        out.print(f"removed {count} {kind.replace('_', ' ')}")
    err.print("see `lab doctor` for the account and region used")


def _show_holdings(config: LabConfig | None, region: str | None) -> None:
    """`lab aws sweep --dry-run`: per lab and kind, how many, the hourly cost, and what has
    expired (what the sweep would remove); then the total."""
    from lab.aws.api import clients, translated
    from lab.aws.resources import billing, holdings, region_of

    aws = clients(region_of(config, region))
    with translated(aws.region):
        held = holdings(aws)
    out.print(f"{aws.region} now: {billing(held)}", soft_wrap=True)
    for lab in dict.fromkeys(h.lab for h in held):
        out.print(f"  lab {lab}:")
        for h in (h for h in held if h.lab == lab):
            price = ("free" if h.hourly == 0.0 else "price unknown" if h.hourly is None
                     else f"~${h.hourly:.4f}/h")
            gone = ("" if not h.expired else "  expired: would be removed"
                    if h.expired == h.count else f"  {h.expired} expired: would be removed")
            out.print(f"    {h.what:<24} {price:<14}{gone}".rstrip(), soft_wrap=True)
    if any(h.expired for h in held):
        err.print("nothing removed (--dry-run): `lab aws sweep` removes what has expired")


def _lab_here(ctx: typer.Context) -> LabConfig | None:
    """The lab whose lab.yml is here (``--file``), or None: no lab, or one that does not
    load (the sweep is the region's business, not the lab's)."""
    if not current(ctx).file.is_file():
        return None
    try:
        return lab_config(ctx)
    except ConfigError:
        return None
