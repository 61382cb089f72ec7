"""Kafka release emulation (``--as-version``): the table moved to
:mod:`pykbroker.protocol.releases`, applying it to :mod:`pykbroker.server.releases`;
this module keeps the documented import path."""

from ..protocol.releases import RELEASES, check_release, normalize, ranges
from ..server.releases import apply_release

__all__ = ["RELEASES", "apply_release", "check_release", "normalize", "ranges"]
