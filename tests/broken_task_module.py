"""A task module whose own code fails as it is imported (tests/test_engine.py)."""

raise RuntimeError("this module cannot be imported")
