"""SQL, projections, and other I/O behind the use cases."""
