"""Devices' aggregates, each declared once as the kit's ``Aggregate`` (its stream type, pure
decider and evolve from ``domain/``), for the use cases of every module that changes it: a
device is changed by its own use cases (``handlers.py``), by provisioning and by presence
(its first connection activates it)."""

from __future__ import annotations

from outpost_devices.domain import commands, devices, registration_tokens, registry
from outpost_kit.aggregate import Aggregate

DEVICES = Aggregate(devices.STREAM_TYPE, devices.decide, devices.evolve)
REGISTRATION_TOKENS = Aggregate(
    registration_tokens.STREAM_TYPE, registration_tokens.decide, registration_tokens.evolve
)
SITES = Aggregate(registry.SITE, registry.decide_site, registry.evolve_site)
GROUPS = Aggregate(registry.DEVICE_GROUP, registry.decide_group, registry.evolve_group)
COMPONENTS = Aggregate(registry.COMPONENT, registry.decide_component, registry.evolve_component)
SENSORS = Aggregate(registry.SENSOR, registry.decide_sensor, registry.evolve_sensor)
COMMANDS = Aggregate(commands.COMMAND, commands.decide_command, commands.evolve_command)
DESIRED = Aggregate(commands.DESIRED_STATE, commands.decide_desired, commands.evolve_desired)
