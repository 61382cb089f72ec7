"""Kafka's shell tools, as ``pykbroker`` subcommands (docs/cli.md).

``client.py`` is a small blocking Kafka client on our own sans-IO codec
(``pykbroker.protocol``): it talks the wire protocol to any broker, a real
Kafka included. ``topics.py``, ``groups.py`` and ``console.py`` are the
``topics``, ``groups`` and ``produce``/``consume`` commands on top of it;
``membership.py`` is the classic group member behind ``consume --group``.
Nothing here imports the broker: the commands start in milliseconds.
"""

from __future__ import annotations

COMMANDS = ("topics", "groups", "produce", "consume")


def run(command: str, argv: list[str]) -> int:
    """``pykbroker COMMAND ARGS...`` for one of :data:`COMMANDS`."""
    from . import common, console, groups, topics

    body: common.CommandBody = {"topics": topics.Topics, "groups": groups.Groups,
                                "produce": console.Produce, "consume": console.Consume}[command]()
    return common.run_command(f"pykbroker {command}", body, argv)
