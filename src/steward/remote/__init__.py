"""The CLI against a running server (``--server``/``--token``): the same commands, outputs and
exit codes, over the REST API instead of the database."""
