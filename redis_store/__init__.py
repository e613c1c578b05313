"""Redis: the fast, rebuildable state.

Caches, home timelines, celebrity outboxes, counters, sessions (token cache),
rate limits, idempotency keys and the event stream. Everything here can be
rebuilt from the graph, except what the event stream has not yet persisted,
which is why the embedded server runs with AOF on.
"""
