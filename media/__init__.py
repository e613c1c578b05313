"""Media: the object store, upload validation, the remote tasks that make variants, and signed URLs.

Nothing here knows about HTTP; ``services.media`` drives it and ``api.routes.media``
exposes it.
"""
