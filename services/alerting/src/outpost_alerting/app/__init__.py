"""Use cases and the handler tables (HANDLERS, policies on other services' events)."""
