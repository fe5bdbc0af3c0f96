"""Request/reply responders and stream consumers: decode, call one use case, encode."""
