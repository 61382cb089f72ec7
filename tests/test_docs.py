"""docs/apis.md is generated from the handler registry and must be current;
docs/architecture.md names only modules that exist."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_api_table_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api_docs"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_architecture_names_existing_modules():
    """Every module and directory docs/architecture.md names in backticks
    exists: paths relative to the repo or to pykbroker/, a bare ``name.py``
    in the package or at the top of the repo."""
    text = re.sub(r"```.*?```", "", (ROOT / "docs" / "architecture.md").read_text(), flags=re.S)
    pkg = ROOT / "pykbroker"
    modules = {p.name for p in pkg.rglob("*.py")}
    missing = []
    for tok in set(re.findall(r"`([^`\n]+)`", text)):
        if not re.fullmatch(r"[\w./-]+", tok) or tok.startswith("../"):
            continue
        if "/" in tok:
            if not ((ROOT / tok).exists() or (pkg / tok).exists()):
                missing.append(tok)
        elif tok.endswith(".py") and tok not in modules and not (ROOT / tok).exists():
            missing.append(tok)
    assert not missing, f"docs/architecture.md names what does not exist: {sorted(missing)}"
