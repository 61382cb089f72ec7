"""Kafka's ``sasl.jaas.config`` lines.

``org.apache.kafka.common.security.plain.PlainLoginModule required
username="admin" password="secret" user_alice="alice-secret";``: a login
module class, a control flag and ``key=value`` options (values quoted or
not), ended by ``;``. Only one module per line is read (as Kafka requires
for ``sasl.jaas.config``).
"""

from __future__ import annotations

import re

import attrs


class JaasError(ValueError):
    pass


@attrs.frozen
class JaasEntry:
    login_module: str
    flag: str
    options: dict[str, str]


_HEAD = re.compile(r"\s*([A-Za-z_$][\w$.]*)\s+(required|requisite|sufficient|optional)\b", re.I)
_OPT = re.compile(r'\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))')


def parse(text: str) -> JaasEntry:
    m = _HEAD.match(text)
    if not m:
        raise JaasError("JAAS config entry must start with a login module and a control flag")
    pos = m.end()
    options: dict[str, str] = {}
    while True:
        rest = text[pos:].lstrip()
        if rest.startswith(";"):
            if rest[1:].strip():
                raise JaasError("JAAS config property contains more than one login module")
            break
        if not rest:
            raise JaasError("JAAS config entry not terminated by semi-colon")
        o = _OPT.match(text, pos)
        if not o:
            raise JaasError(f"Invalid JAAS config option near {rest[:30]!r}")
        value = o.group(2) if o.group(2) is not None else o.group(3)
        options[o.group(1)] = re.sub(r"\\(.)", r"\1", value)
        pos = o.end()
    return JaasEntry(m.group(1), m.group(2).lower(), options)
