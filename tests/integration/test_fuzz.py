"""Every libFuzzer target of tests/fuzz for a few seconds, and every saved
crash input once (scripts/fuzz). scripts/test starts it beside the other
tests, at a lower priority (the mounts leave much of the machine idle),
and this test checks what it found; alone, the test runs it itself. Not
once per build in KEYFS_BUILDS: scripts/fuzz builds its own (clang, ASan,
UBSan) in build/fuzz."""
import os
import re
import subprocess

import pytest

from conftest import ROOT, background

pytestmark = pytest.mark.independent


def test_every_fuzz_target_and_saved_crash_input():
    done = background("fuzz", 1800)
    if done is None:
        res = subprocess.run([os.path.join(ROOT, "scripts", "fuzz"), "5"],
                             capture_output=True, text=True, timeout=1800)
        done = (res.returncode, res.stdout + res.stderr)
    rc, out = done
    print(out)
    assert rc == 0, out
    # a line per target the script knows, each fuzzed for its seconds
    with open(os.path.join(ROOT, "scripts", "fuzz")) as f:
        known = re.search(r'^all="([^"]*)"', f.read(), re.M).group(1)
    targets = set(known.replace("\\", " ").split())
    ok = {line.split(":")[0] for line in out.splitlines() if line.endswith(", ok")}
    assert targets and ok == targets, out
