"""Outpost's contracts: the only code services share (docs/architecture.md principle 1)."""
