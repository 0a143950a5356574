"""Persistence: SQLAlchemy models, the event store and the database handle."""
