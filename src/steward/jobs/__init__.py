"""Long jobs, the outbox of effects, and the worker that drains it."""
