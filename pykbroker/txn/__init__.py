"""Exactly-once: idempotent producers and transactions.

- :mod:`.producers` - producer state on the partitions: the append-path
  hooks (sequence/epoch checks, duplicates), last stable offset, aborted
  transactions for read_committed fetches, verification of transactional
  produce, snapshots and producer-id expiry (the state itself lives in
  ``storage/producer_state.py``, the aborted index in ``storage/txn_index.py``)
- :mod:`.coordinator` - the transaction coordinator: InitProducerId,
  AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, markers, timeouts, expiry,
  DescribeTransactions/ListTransactions
- :mod:`.metadata` - a transactional id's state machine
- :mod:`.records` - ``__transaction_state`` record formats
- :mod:`.producer_ids` - producer id blocks that survive restarts
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..server.state import BrokerState
    from .coordinator import TransactionCoordinator


def coordinator_of(state: BrokerState) -> TransactionCoordinator:
    """The broker's TransactionCoordinator (built with the state)."""
    return state.txn_coordinator


__all__ = ["coordinator_of"]
