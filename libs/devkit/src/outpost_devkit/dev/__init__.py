"""The development stack: ``make dev`` (``outpost-dev``) and the e2e tests' platform."""

from outpost_devkit.dev.stack import AlreadyRunning, DevStack, DevStackError, ServiceDied
from outpost_kit.material import ALL_SERVICES

__all__ = ["ALL_SERVICES", "AlreadyRunning", "DevStack", "DevStackError", "ServiceDied"]
