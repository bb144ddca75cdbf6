"""The ``collab-harness`` command line: one module per command, wired in :mod:`collab_harness.cli.main`."""
