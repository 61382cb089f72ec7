"""Small durable files of Kafka's log directories, in Kafka's formats.

- offset checkpoints (``recovery-point-offset-checkpoint``,
  ``log-start-offset-checkpoint``): ``0\\n<count>\\n<topic> <partition> <offset>\\n...``
- ``leader-epoch-checkpoint``: ``0\\n<count>\\n<epoch> <startOffset>\\n...``
- ``partition.metadata``: ``version: 0\\ntopic_id: <base64url uuid>``
- ``meta.properties``: Java properties (``version``, ``node.id``,
  ``cluster.id``, ``directory.id``)

Writes go to ``<file>.tmp``, are fsynced, and renamed over the target (then
the directory is fsynced), as Kafka's CheckpointFile does.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path


class CorruptCheckpointError(ValueError):
    pass


# --- Kafka Uuid text form ---------------------------------------------------------


def kafka_uuid_str(raw: bytes) -> str:
    """Kafka's ``Uuid.toString()``: base64url of the 16 bytes, no padding (22 chars)."""
    if len(raw) != 16:
        raise ValueError("a Kafka uuid is 16 bytes")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def kafka_uuid_from_str(s: str) -> bytes:
    s = s.strip()
    if len(s) != 22:
        raise ValueError(f"invalid Kafka uuid {s!r}: expected 22 base64url characters")
    raw = base64.urlsafe_b64decode(s + "==")
    if len(raw) != 16:
        raise ValueError(f"invalid Kafka uuid {s!r}")
    return raw


def random_kafka_uuid() -> bytes:
    """Kafka's ``Uuid.randomUuid()``: a v4 uuid that is not zero, not the
    metadata topic id (1) and whose text form does not start with '-'."""
    while True:
        raw = uuid.uuid4().bytes
        if raw in (bytes(16), bytes(15) + b"\x01"):
            continue
        if kafka_uuid_str(raw).startswith("-"):
            continue
        return raw


# --- atomic writes --------------------------------------------------------------------


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_filesystem(path: Path) -> None:
    """Make everything written to the file system holding ``path`` durable:
    Linux's syncfs(2) (one call instead of an fsync per file: a clean
    shutdown of thousands of partitions writes tens of thousands of files,
    issue 17); os.sync() where syncfs is not available. Raises OSError."""
    import ctypes

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"syncfs({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def read_bytes(path: Path | str) -> bytes:
    """A whole (small) file, with plain os calls: Path.read_bytes/read_text
    cost several times more, and start-up reads a few files per partition
    (issue 17). Raises FileNotFoundError like them."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        size = max(os.fstat(fd).st_size, 0) + 1  # +1: EOF seen in the same read
        while True:
            b = os.read(fd, size)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def atomic_write(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via ``path.tmp`` + rename (fsynced if asked)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


# --- checkpoint files ---------------------------------------------------------------------


def _read_checkpoint_lines(path: Path, fields: int) -> list[list[str]] | None:
    try:
        text = read_bytes(path).decode("utf-8")
    except FileNotFoundError:
        return None
    lines = text.splitlines()
    try:
        if not lines or int(lines[0].strip()) != 0:
            raise CorruptCheckpointError(f"{path}: unsupported checkpoint version line {lines[:1]!r}")
        count = int(lines[1].strip())
    except (IndexError, ValueError) as e:
        raise CorruptCheckpointError(f"{path}: malformed checkpoint header") from e
    entries = []
    for line in lines[2 : 2 + count]:
        parts = line.split()
        if len(parts) != fields:
            raise CorruptCheckpointError(f"{path}: malformed checkpoint line {line!r}")
        entries.append(parts)
    if len(entries) != count:
        raise CorruptCheckpointError(f"{path}: expected {count} entries, found {len(entries)}")
    return entries


def read_offset_checkpoint(path: Path) -> dict[tuple[str, int], int]:
    """``{(topic, partition): offset}``; empty if the file does not exist."""
    rows = _read_checkpoint_lines(path, 3)
    if rows is None:
        return {}
    try:
        return {(t, int(p)): int(o) for t, p, o in rows}
    except ValueError as e:
        raise CorruptCheckpointError(f"{path}: malformed entry") from e


def write_offset_checkpoint(path: Path, offsets: Mapping[tuple[str, int], int], *, fsync: bool = True) -> None:
    lines = ["0", str(len(offsets))]
    lines += [f"{t} {p} {o}" for (t, p), o in sorted(offsets.items())]
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), fsync=fsync)


def read_epoch_checkpoint(path: Path) -> list[tuple[int, int]] | None:
    """``[(epoch, start_offset), ...]``; None if the file does not exist."""
    rows = _read_checkpoint_lines(path, 2)
    if rows is None:
        return None
    try:
        return [(int(e), int(o)) for e, o in rows]
    except ValueError as e:
        raise CorruptCheckpointError(f"{path}: malformed entry") from e


def write_epoch_checkpoint(path: Path, entries: Iterable[tuple[int, int]], *, fsync: bool = True) -> None:
    entries = list(entries)
    lines = ["0", str(len(entries))] + [f"{e} {o}" for e, o in entries]
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), fsync=fsync)


def read_partition_metadata(path: Path) -> bytes | None:
    """The topic id stored in ``partition.metadata``; None if missing or unreadable."""
    try:
        text = read_bytes(path).decode("utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    fields = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            fields[k.strip()] = v.strip()
    if fields.get("version") != "0" or "topic_id" not in fields:
        return None
    try:
        return kafka_uuid_from_str(fields["topic_id"])
    except ValueError:
        return None


def write_partition_metadata(path: Path, topic_id: bytes, *, fsync: bool = True) -> None:
    # Kafka's PartitionMetadata.encode(): no trailing newline
    atomic_write(path, f"version: 0\ntopic_id: {kafka_uuid_str(topic_id)}".encode(), fsync=fsync)


# --- Java properties (meta.properties) -------------------------------------------------------


def read_properties(path: Path) -> dict[str, str] | None:
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    props = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#!":
            continue
        k, sep, v = line.partition("=")
        if not sep:
            k, sep, v = line.partition(":")
        props[k.strip()] = v.strip()
    return props


def write_properties(path: Path, props: Mapping[str, str], *, fsync: bool = True) -> None:
    stamp = time.strftime("%a %b %d %H:%M:%S %Z %Y")
    lines = ["#", f"#{stamp}"] + [f"{k}={v}" for k, v in props.items()]
    atomic_write(path, ("\n".join(lines) + "\n").encode("utf-8"), fsync=fsync)
