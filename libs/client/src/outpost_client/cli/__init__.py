"""The ``outpost`` command line (typer + rich): ``outpost_client.cli.app:main``."""
