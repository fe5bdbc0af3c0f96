"""Root conftest: shared fixtures (real NATS and PostgreSQL) for every package's tests."""

pytest_plugins = ["outpost_devkit.testing.fixtures"]
