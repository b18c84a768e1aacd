"""keyfsctl restore: a whole backup directory, as restic, borg or rsync
bring it back, verified and planned first, then restored through the
mounted keyfs; nothing changes on a dry run, and a refused file is named
and fails the run."""
import os
import re
import shutil

from conftest import run, tree_digest, wait_for
from test_members import mounted_with


def keyfsctl(build, m, *args):
    return run([os.path.join(build, "keyfsctl"), "-m", m.path, "restore", *args], check=False)


def test_restore_plans_then_restores_a_backup_directory(build, keyfs_bin, tmp_path):
    store = tmp_path / "store"
    for name in ("alpha", "beta"):
        (store / name).mkdir(parents=True)
        (store / name / "key").write_text(f"{name} key\n")
    live = tmp_path / "wg"
    live.mkdir()
    (live / "wg0.key").write_text("wireguard key\n")
    ran = tmp_path / "hook-ran"
    hook = tmp_path / "reload"
    hook.write_text(f"#!/bin/sh\necho ran >> {ran}\n")
    hook.chmod(0o755)
    conf = f"[keyset wg]\npath = {live}\ninclude = *.key\non_activate = {hook}\n"
    backup = tmp_path / "backup"
    for m in mounted_with(keyfs_bin, tmp_path, str(store), conf):
        m.unlock()
        # the backup: what rsync of export/ brings back
        run(["rsync", "-a", m.export + "/", str(backup) + "/"])
        assert sorted(os.listdir(backup)) == ["README.txt", "alpha.pem", "beta.pem", "wg.pem"]

        # the disaster: alpha lost, wg's key overwritten, beta intact
        shutil.rmtree(store / "alpha")
        (live / "wg0.key").write_text("a broken key\n")
        (backup / "zz-damaged.pem").write_bytes(b"-----BEGIN AGE ENCRYPTED FILE-----\nxx\n")
        assert wait_for(lambda: not os.path.exists(os.path.join(m.export, "alpha.pem")), 20)
        before = (tree_digest(str(store)), tree_digest(str(live)))

        res = keyfsctl(build, m, "--dry-run", str(backup))
        assert res.returncode == 1, res
        out = res.stdout
        fpr = r"fingerprint [0-9a-f]{64}"
        assert re.search(rf"alpha\.pem: keyset alpha, sealed by a password, "
                         rf"signed by keyfs@\S+ \(this keyfs\), {fpr}: new$", out,
                         re.M), out
        assert re.search(rf"beta\.pem: keyset beta, .*: identical$", out, re.M), out
        assert re.search(r"wg\.pem: keyset wg, .*: differs \(becomes an inactive version\)$",
                         out, re.M), out
        assert re.search(r"zz-damaged\.pem: refused: verify failed", out, re.M), out
        assert "README" not in out
        assert "dry run: nothing changed" in out
        assert (tree_digest(str(store)), tree_digest(str(live))) == before
        assert not ran.exists()

        # a refused file fails the restore, but the others are restored
        res = keyfsctl(build, m, str(backup))
        assert res.returncode == 1, res
        assert (store / "alpha" / "key").read_text() == "alpha key\n"
        assert (live / "wg0.key").read_text() == "a broken key\n"
        assert re.search(r"wg\.pem: import \"wg\": differs .*stored as inactive version 1",
                         res.stdout, re.M), res.stdout

        # the damaged copy gone: every file restored, wg activated, hook run once
        os.unlink(backup / "zz-damaged.pem")
        res = keyfsctl(build, m, "--activate", str(backup))
        assert res.returncode == 0, res
        assert (live / "wg0.key").read_text() == "wireguard key\n"
        assert re.search(r'wg\.pem: activate "wg": version \d+ is active', res.stdout), res.stdout
        assert ran.read_text() == "ran\n"
        assert res.stdout.rstrip().endswith("3 file(s): 0 refused"), res.stdout


def test_restore_usage_and_trouble(build, mount, tmp_path):
    """Exit 2: no operand, a mountpoint that is no keyfs, a directory
    without any sealed backup."""
    assert keyfsctl(build, mount).returncode == 2
    res = run([os.path.join(build, "keyfsctl"), "-m", str(tmp_path), "restore", str(tmp_path)],
              check=False)
    assert res.returncode == 2 and "not a mounted keyfs" in res.stderr, res
    empty = tmp_path / "empty"
    empty.mkdir()
    res = keyfsctl(build, mount, str(empty))
    assert res.returncode == 2 and "holds no sealed backup" in res.stderr, res
