"""Fleet: sensor and device profiles, packs, config artefacts and desired-state bindings
(issue 21, ADR 0088). So far its pure domain only (docs/design/fleet.md says what follows)."""
