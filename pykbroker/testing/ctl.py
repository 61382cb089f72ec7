"""``pykbroker ctl``: moved to :mod:`pykbroker.ctl` (part of the product's
command line); this module keeps the old import path."""

from ..ctl import main, request

__all__ = ["main", "request"]
