"""Fault rules as data: moved to :mod:`pykbroker.server.faults` (the broker
applies them); this module keeps the documented import path."""

from ..server.faults import (
    ACTIONS,
    FaultInjector,
    FaultRule,
    FaultRuleError,
    InjectedDisconnect,
    api_key_of,
    error_code_of,
    error_response,
    set_error_codes,
)

__all__ = [
    "ACTIONS", "FaultInjector", "FaultRule", "FaultRuleError", "InjectedDisconnect",
    "api_key_of", "error_code_of", "error_response", "set_error_codes",
]
