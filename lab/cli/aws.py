"""``lab aws``: what only the aws target has, for whoever pays for the account."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.cli.base import handled
from lab.cli.output import err, out, progress

app = typer.Typer(help="AWS housekeeping: remove what lab made and forgot.",
                  no_args_is_help=True)


@app.command("sweep")
@handled
def sweep(
    ctx: typer.Context,
    region: Annotated[str | None, typer.Option(
        help="The region to sweep (default: AWS_REGION, or the profile's).")] = None,
) -> None:
    """Remove every lab-made resource of a region whose lab.expires has passed, whatever
    lab made it: the instructor's end-of-day command for a whole class.

    Instances, load balancers, target groups, listeners, launch templates, security groups,
    key pairs, AMIs and their snapshots, found by tag, each service asked itself.

    Example:  lab aws sweep --region eu-west-1
    """
    from lab.aws.resources import sweep as run

    with progress("lab aws sweep") as listener:
        found = run(region, on_event=listener)
    if found.empty:
        out.print("nothing lab made has expired")
        return
    for kind, count in found.counts().items():
        out.print(f"removed {count} {kind.replace('_', ' ')}")
    err.print("see `lab doctor` for the account and region used")
