"""kill -9 during activations of a live keyset (a short run of
tools/live-crash-loop.py): every key file stays the old or the new one,
an interrupted install is finished at the next start, and no temporary is
left behind."""
import os
import subprocess
import sys

from conftest import ROOT


def test_kill_during_activate_leaves_old_or_new(keyfs_bin, tmp_path):
    res = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "live-crash-loop.py"),
                          "--kills", "20", "--keyfs", keyfs_bin, "--workdir", str(tmp_path / "w")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 failures" in res.stdout, res.stdout
