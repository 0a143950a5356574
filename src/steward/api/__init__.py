"""The REST API: a thin surface over the services, generated from the kind registry."""
