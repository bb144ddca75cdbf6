"""A plugin that fails at import time, on purpose: the harness must skip it with a warning naming it."""

raise RuntimeError("collab_harness_broken fails to import on purpose")
