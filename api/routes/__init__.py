"""The api's routers: the protected ones (``ingest``, ``score``, ``models``) and ``health``."""
