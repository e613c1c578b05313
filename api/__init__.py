"""The HTTP API: Mastodon-compatible routers, request parsing, auth and error mapping.

Routers translate HTTP to service calls and service results to Mastodon
entities; the rules live in ``services``.
"""
