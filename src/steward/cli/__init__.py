"""The ``steward`` command: a thin layer over the services."""
