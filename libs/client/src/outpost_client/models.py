"""The public API's models (generated from the OpenAPI document)."""

from outpost_client._generated import *  # noqa: F403
from outpost_client._generated import SCHEMAS

__all__ = ["SCHEMAS"]
