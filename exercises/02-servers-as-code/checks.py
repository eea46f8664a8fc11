"""Exercise 02, servers as code: the playbook makes the server, and a rerun changes nothing."""

from __future__ import annotations

from lab.course.grader import Attempt, Feedback

PLAYBOOK = "playbooks/web.yml"
PAGE = "Welcome to the shop"


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
    return None


def serves_the_page(attempt: Attempt) -> Feedback | None:
    for name in attempt.server_names():
        page = attempt.page(name).strip()
        if page != PAGE:
            found = f'{name} serves "{page}"' if page else f"{name} answers nothing on port 80"
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


def idempotent(attempt: Attempt) -> Feedback | None:
    report = attempt.idempotence()
    if report.ok:
        return None
    changed = report.not_idempotent
    if not changed:
        return Feedback(found=report.problem, next="fix the playbook, then `lab provision`")
    names = ", ".join(sorted({f"'{t.task}'" for t in changed}))
    shell = [t for t in attempt.tasks(PLAYBOOK) if t.get("name") in {c.task for c in changed}
             and any(m in key for key in t for m in ("shell", "command"))]
    why = ("a shell or command task reports a change on every run, whatever the server "
           "already has" if shell else "it does its work again instead of seeing it is done")
    return Feedback(
        found=f"not idempotent: {names} changed on a second run ({why})",
        expected="a second `lab provision` reporting nothing changed",
        next="use a module that checks first: ansible.builtin.apt with `state: present` for "
             "a package, ansible.builtin.copy for a file")
