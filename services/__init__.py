"""Application services: the rules of each feature, between the HTTP layer and the stores.

A service takes plain values, talks to the graph, Redis and the actors, and
returns plain dicts; it knows nothing of HTTP. Errors it raises are
``services.errors.ServiceError`` subclasses that the API maps to statuses.
"""
