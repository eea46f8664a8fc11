"""Exercise 02, servers as code: the playbook makes the server, and a rerun changes nothing.

The first goals look at web-1, the attendee's server; the last ones at a server built from
their playbook alone (``attempt.rebuild()``), since only that tells what the code makes: a
page written by hand on web-1, or a change applied there by a check's own rerun, says nothing
about it.
"""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback, Rebuild, hidden_changes

PLAYBOOK = "playbooks/web.yml"
PAGE = "Welcome to the shop"
FRESH = f"a fresh server built from {PLAYBOOK} alone"


def installs_nginx(attempt: Attempt) -> Feedback | None:
    for task in attempt.tasks(PLAYBOOK):
        if "nginx" in str(task) and any(m in key for key in task for m in
                                        ("apt", "package", "shell", "command")):
            return None
    return Feedback(
        found=f"{PLAYBOOK} has no task that installs nginx yet",
        expected="a task installing the package nginx",
        next="add a task with ansible.builtin.apt: {name: nginx, state: present, "
             "update_cache: true}, then `lab provision`")


def provisioned(attempt: Attempt) -> Feedback | None:
    for name in attempt.server_names():
        if not attempt.host(name).package("nginx").is_installed:
            return Feedback(
                found=f"nginx is not installed on {name}",
                expected="the playbook run on the server",
                next="`lab provision` runs playbooks/web.yml on it (read its output for a "
                     "failed task)")
        last = attempt.last_provisioned(name)
        if last is None:
            return Feedback(
                found=f"nginx is on {name}, but no `lab provision` has finished on it: what "
                      "is there was put there another way (by hand?)",
                expected=f"{name} made by {PLAYBOOK}, through `lab provision`",
                next="`lab provision` (read its output for a failed task)")
        if (attempt.directory / PLAYBOOK).stat().st_mtime > last.at:
            return Feedback(
                found=f"{PLAYBOOK} changed after the last `lab provision` on {name}: {name} "
                      "is behind the code, still what the playbook was before",
                expected=f"{name} provisioned from {PLAYBOOK} as it is now",
                next="`lab provision`: it runs the playbook as it is now")
    return None


def serves_the_page(attempt: Attempt) -> Feedback | None:
    for name in attempt.server_names():
        page = attempt.page(name).strip()
        if page != PAGE:
            found = f'{name} serves "{_short(page)}"' if page else \
                f"{name} answers nothing on port 80"
            return Feedback(
                found=found, expected=f"{PAGE!r} at http://127.0.0.1/ on the server",
                next="a copy task writing /var/www/html/index.html, and the site on port 80 "
                     "(see the TODOs), then `lab provision`")
    return None


def running_at_boot(attempt: Attempt) -> Feedback | None:
    for name in attempt.server_names():
        nginx = attempt.host(name).service("nginx")
        if not nginx.is_running:
            return Feedback(found=f"nginx is installed but not running on {name}",
                            expected="nginx running",
                            next="`state: started` on the service task, then `lab provision`")
        if not nginx.is_enabled:
            return Feedback(
                found=f"nginx is installed but not enabled at boot on {name}: a reboot "
                      "would take the site down",
                expected="nginx started at boot",
                next="try `enabled: true` on the service task, then `lab provision`")
    return None


def rebuilt(attempt: Attempt) -> Feedback | None:
    """web-1 passed; can the playbook make it again, from nothing?"""
    rebuild = attempt.rebuild()
    broken = _not_built(rebuild)
    if broken:
        return broken
    for name in rebuild.server_names():
        page = rebuild.page(name).strip()
        if page != PAGE:
            shown = f'serves "{_short(page)}"' if page else "answers nothing on port 80"
            return Feedback(
                found=f"{FRESH} {shown}: web-1's page was not made by the playbook, and "
                      "would be lost with the server",
                expected=f"the playbook alone makes a server that serves {PAGE!r}",
                next="a copy task writing /var/www/html/index.html with `content:` (TODO 3), "
                     "then `lab provision`")
        nginx = rebuild.host(name).service("nginx")
        if not nginx.is_running or not nginx.is_enabled:
            state = "not running" if not nginx.is_running else "not enabled at boot"
            return Feedback(
                found=f"nginx is {state} on {FRESH}: web-1's nginx was put right by hand",
                expected="the playbook alone makes nginx run, and start at boot",
                next="`state: started` and `enabled: true` on the service task (TODO 4), then "
                     "`lab provision`")
    return None


def idempotent(attempt: Attempt) -> Feedback | None:
    """Judged on the fresh server: it was provisioned once (the changes a new playbook makes
    are made there), then a second run must change nothing."""
    rebuild = attempt.rebuild()
    broken = _not_built(rebuild)
    if broken:
        return broken
    second = rebuild.second
    if second is None:  # lab could not run it at all
        failed = rebuild.failed
        return Feedback(found=f"the second run on {FRESH} could not run: "
                              f"{failed.detail if failed else 'no reason given'}",
                        next="`lab exercise check` again")
    if second.ok:
        return None
    changed = second.not_idempotent
    if not changed:
        return Feedback(found=f"the second run on {FRESH} failed: {second.problem}",
                        expected="a second run that passes and changes nothing",
                        next="fix the failing task, then `lab provision`")
    names = ", ".join(sorted({f"'{t.task}'" for t in changed}))
    shell = [t for t in attempt.tasks(PLAYBOOK) if t.get("name") in {c.task for c in changed}
             and any(m in key for key in t for m in ("shell", "command"))]
    why = ("a shell or command task reports a change on every run, whatever the server "
           "already has" if shell else "it does its work again instead of seeing it is done")
    return Feedback(
        found=f"not idempotent: {names} changed on a second run on {FRESH} ({why})",
        expected="a second `lab provision` reporting nothing changed",
        next="use a module that checks first: ansible.builtin.apt with `state: present` for "
             "a package, ansible.builtin.copy for a file")


def no_hidden_changes(attempt: Attempt) -> Feedback | None:
    return hidden_changes(attempt, PLAYBOOK)


def _not_built(rebuild: Rebuild) -> Feedback | None:
    if rebuild.converged:
        return None
    failed = rebuild.failed
    what = f"{failed.name} failed: {failed.detail or failed.outcome}" if failed else "no server"
    if failed is not None and failed.name == "create":
        return Feedback(found=f"a fresh server to check {PLAYBOOK} on could not be made: {what}",
                        next="`lab doctor` says what lab is missing")
    return Feedback(
        found=f"{FRESH} could not be built: {what}; web-1 had something by hand that the "
              "playbook relies on",
        expected="the playbook makes the server from nothing",
        next="add, before the failing task, the task that makes what it needs (the package, "
             "the file), then `lab provision`")


def _short(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= 60 else line[:57] + "..."
