"""Test helpers shared by every Outpost distribution.

``outpost_devkit.testing.fixtures`` is a pytest plugin (registered by the root conftest) that
provides real nats-server and PostgreSQL to integration tests.
"""
