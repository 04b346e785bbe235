"""A module that fails to import (tests/test_python.py)."""
import json

raise RuntimeError("broken on purpose")
