"""Built-in collab-harness plugins."""
