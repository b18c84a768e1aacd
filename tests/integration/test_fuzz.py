"""Every libFuzzer target of tests/fuzz for a few seconds, and every saved
crash input once (scripts/fuzz), as one test beside the others: the
mounts leave much of the machine idle, and fuzzing at a lower priority
takes what they leave. Not once per build in KEYFS_BUILDS: scripts/fuzz
builds its own (clang, ASan, UBSan) in build/fuzz. KEYFS_FUZZ_SECONDS
sets the seconds per target (5)."""
import os
import re
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.independent


def test_every_fuzz_target_and_saved_crash_input():
    secs = os.environ.get("KEYFS_FUZZ_SECONDS", "5")
    res = subprocess.run(["nice", "-n", "10", os.path.join(ROOT, "scripts", "fuzz"), secs],
                         capture_output=True, text=True, timeout=1800)
    print(res.stdout)
    assert res.returncode == 0, res.stdout + res.stderr
    # a line per target the script knows, each fuzzed for its seconds
    with open(os.path.join(ROOT, "scripts", "fuzz")) as f:
        targets = re.search(r'^all="([^"]*)"', f.read(), re.M).group(1).split()
    ok = {line.split(":")[0] for line in res.stdout.splitlines() if line.endswith(", ok")}
    assert targets and ok == set(targets), res.stdout
