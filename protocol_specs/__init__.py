"""The message definitions, installed as the package ``pykbroker.protocol_specs``.

Only data lives here (one JSON file per API, ``data/`` for record schemas);
the codec reads it with ``importlib.resources`` (``pykbroker/protocol/codec.py``).
"""
