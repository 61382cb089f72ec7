"""Package discovery only; every other setting is in pyproject.toml.

The message definitions stay at the top of the repository (``protocol_specs/``)
and ship inside the package as ``pykbroker.protocol_specs`` (``package-dir`` in
pyproject.toml). A ``packages.find`` table in pyproject.toml cannot name a
package that lives outside ``pykbroker/``, so the list is built here: every
package under ``pykbroker/`` plus that one and its data directory (record
schemas; listed so that setuptools does not warn about an importable directory
missing from ``packages``).
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["pykbroker", "pykbroker.*"]) + [
    "pykbroker.protocol_specs",
    "pykbroker.protocol_specs.data",
])
