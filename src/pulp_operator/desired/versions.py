"""Checks of the version fields that name no image of their own: database.version and
inhibit_version_constraint (the upstream operator ignores the first and enforces the second in a
precheck that stops everything)."""

from __future__ import annotations

import re

from .context import Ctx
from .workload import hpa_enabled

_MAJOR = re.compile(r"^v?(\d+)")


def _major(text: str) -> str | None:
    match = _MAJOR.match(text.strip())
    return match.group(1) if match else None


def version_checks(ctx: Ctx) -> None:
    spec = ctx.spec
    web = spec.web
    web_runs = ctx.web_enabled and web is not None and (web.replicas > 0 or hpa_enabled(web))
    versions_differ = spec.image_web_version != spec.image_version
    if web_runs and versions_differ and not spec.inhibit_version_constraint:
        ctx.problems.add(
            "spec.image_web_version",
            "spec",
            "ImageVersionMismatch",
            f"spec.image_web_version {spec.image_web_version} differs from spec.image_version"
            f" {spec.image_version}: pulp-web carries the routes of the plugins of its own"
            " release; set both to one release, or spec.inhibit_version_constraint to run"
            " them apart",
            condition="WebReady",
        )
    db = spec.database
    if db.version and ctx.managed_db:
        tag = db.postgres_image.rsplit("/", 1)[-1].partition(":")[2]
        image_major = _major(tag) if tag else None
        if image_major is not None and _major(db.version) != image_major:
            ctx.problems.add(
                "spec.database.version",
                "spec",
                "DatabaseVersionMismatch",
                f"spec.database.version {db.version} does not match spec.database.postgres_image"
                f" {db.postgres_image}: the image decides which PostgreSQL runs; change one of"
                " them (or remove database.version)",
                condition="DatabaseReady",
            )
