"""docs/apis.md is generated from the handler registry and must be current."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_api_table_is_current():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_api_docs"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
