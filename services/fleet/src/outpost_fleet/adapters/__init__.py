"""What the fleet domain needs from libraries it may not import (tools/check_boundaries.py)."""
