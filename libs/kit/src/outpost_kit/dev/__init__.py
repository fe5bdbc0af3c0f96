"""The development stack: ``make dev`` (``outpost-dev``) and the e2e tests' platform."""

from outpost_kit.dev.stack import (
    ALL_SERVICES,
    AlreadyRunning,
    DevStack,
    DevStackError,
    ServiceDied,
)

__all__ = ["ALL_SERVICES", "AlreadyRunning", "DevStack", "DevStackError", "ServiceDied"]
