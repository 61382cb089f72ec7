"""Listener security: TLS, SASL and the credentials behind them (docs/security.md).

Sans-IO where it can be: ``sasl.py`` (mechanism state machines: bytes in,
bytes out), ``scram.py`` (RFC 5802 formulas and the credential store),
``jaas.py`` (Kafka's ``sasl.jaas.config`` lines), ``tls.py`` (``ssl``
contexts from Kafka's ``ssl.*`` properties, principals from certificates).
``listeners.py`` resolves the per-listener settings once at start-up;
``session.py`` is the per-connection authentication state the connection
task consults before it dispatches a request.
"""
