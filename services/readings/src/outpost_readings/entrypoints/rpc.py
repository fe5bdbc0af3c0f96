"""Readings' request/reply entry point."""

from __future__ import annotations

from typing import Any

from outpost_contracts.rpc import Operation
from outpost_kit.responder import Handler, bind
from outpost_readings.app import annotations as annotation_app
from outpost_readings.app.handlers import HANDLERS, Deps


def handlers(
    deps: Deps, annotation_deps: annotation_app.AnnotationDeps
) -> dict[Operation[Any, Any], Handler]:
    return {**bind(HANDLERS, deps), **bind(annotation_app.HANDLERS, annotation_deps)}
