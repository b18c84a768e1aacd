"""The disaster-recovery drill: a server's live keysets (ssh host keys, a
certbot tree, wireguard, /etc/ssl/private with a group known only by
name, a user.* xattr, a LUKS header) backed up with restic through the
mount; then everything lost, and a rebuilt host, whose accounts have the
same names but other numbers, restores them all with restic and one
keyfsctl restore. Each host runs in a private mount namespace with its
own /etc/passwd and /etc/group (drill_host.py)."""
import json
import os
import re
import shutil

from conftest import run
from drill_host import GROUP, KEYSETS, USER

HERE = os.path.dirname(os.path.abspath(__file__))


def accounts(tmp_path, host, uid, gid):
    """This system's passwd and group with the drill's accounts added."""
    passwd, group = tmp_path / f"passwd.{host}", tmp_path / f"group.{host}"
    passwd.write_text(open("/etc/passwd").read() +
                      f"{USER}:x:{uid}:{gid}::/nonexistent:/usr/sbin/nologin\n")
    group.write_text(open("/etc/group").read() + f"{GROUP}:x:{gid}:\n")
    return passwd, group


def as_host(tmp_path, build, host, uid, gid):
    passwd, group = accounts(tmp_path, host, uid, gid)
    script = ('mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && '
              'exec /usr/bin/python3 "$3" "$4" "$5" "$6"')
    res = run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh",
               str(passwd), str(group), os.path.join(HERE, "drill_host.py"), host,
               str(tmp_path), build], check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    with open(tmp_path / f"{host}.json") as f:
        return json.load(f)


def test_disaster_recovery_drill(build, tmp_path):
    hook = tmp_path / "hook"
    hook.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/hooks.log\n')
    hook.chmod(0o755)
    a = as_host(tmp_path, build, "a", 7101, 7102)

    # The disaster: the trees and keyfs' store and state are gone.
    shutil.rmtree(tmp_path / "root")
    shutil.rmtree(tmp_path / "store")
    assert not (tmp_path / "hooks.log").exists()

    b = as_host(tmp_path, build, "b", 7201, 7202)
    code, out, err = b["restore"]
    assert code == 0, out + err
    for k in KEYSETS:
        # signed by host A's key, whose line the administrator kept
        assert re.search(rf'{k}\.pem: keyset {k}, sealed by a password, signed by keyfs@\S+, '
                         rf'fingerprint [0-9a-f]{{64}}: new$', out, re.M), out
        assert re.search(rf'{k}\.pem: import "{k}": restored \(new keyset, active', out), out
    assert "5 file(s): 0 refused" in out

    # Every member and directory as it was, owners by name.
    assert sorted(a["manifest"]) == sorted(b["manifest"])
    for path, want in a["manifest"].items():
        got = dict(b["manifest"][path])
        assert {k: v for k, v in got.items() if k not in ("uid", "gid")} == \
               {k: v for k, v in want.items() if k not in ("uid", "gid")}, path
    exporter = "root/etc/ssl/private/exporter.key"
    assert (a["manifest"][exporter]["uid"], b["manifest"][exporter]["uid"]) == (7101, 7201)
    assert b["manifest"]["root/etc/ssl/private"]["gid"] == 7202
    assert b["manifest"]["root/etc/ssl/private"]["mode"] == oct(0o40710)
    assert b["manifest"][exporter]["xattrs"] == {"user.purpose": b"metrics exporter".hex()}
    assert b["manifest"]["root/etc/letsencrypt/live/example.org/cert.pem"]["link"] == \
        "../../archive/example.org/cert1.pem"

    assert b["pub"] and all(b["pub"].values()), b["pub"]
    assert b["luks"][0] == 0, b["luks"]
    assert sorted((tmp_path / "hooks.log").read_text().split()) == sorted(KEYSETS)
    assert b["check"][0] == 0 and b["check"][1].startswith("KEYFS OK"), b["check"]
    assert re.search(r"Number of regular files transferred: 0$", b["rsync_again"], re.M), \
        b["rsync_again"]
