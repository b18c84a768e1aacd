"""Restoring onto a rebuilt server: what an administrator meets in a
disaster. A live keyset that would back up nothing is a problem of that
keyset, never an empty backup that monitoring counts as done."""
import os
import re

from conftest import wait_for
from test_members import mounted_with
from test_monitoring import CRITICAL, check


def test_include_matching_nothing_is_an_error_not_an_empty_backup(build, keyfs_bin, tmp_path):
    """A typo in include (ssh_host_*_kye): the keyset is reported with the
    reason in the status, README.txt and the log, is not offered as an
    export, and keyfsctl check is CRITICAL; a keyset beside it still
    exports."""
    ssh = tmp_path / "etc-ssh"
    ssh.mkdir()
    (ssh / "ssh_host_ed25519_key").write_text("private\n")
    wg = tmp_path / "wg"
    wg.mkdir()
    (wg / "wg0.conf").write_text("[Interface]\n")
    store = str(tmp_path / "store")
    os.makedirs(store)
    conf = (f"[keyset ssh]\npath = {ssh}\ninclude = ssh_host_*_kye\n"
            f"[keyset wg]\npath = {wg}\ninclude = *.conf\n")
    for m in mounted_with(keyfs_bin, tmp_path, store, conf):
        m.unlock()
        assert sorted(os.listdir(m.export)) == ["README.txt", "wg.pem"]
        status = m.status()
        assert re.search(rf"^  ssh +NOT EXPORTED: include matches no file below {ssh}$",
                         status, re.M), status
        readme = os.path.join(m.export, "README.txt")
        assert wait_for(lambda: "ssh: NOT EXPORTED" in open(readme).read(), 20)
        with open(os.path.join(m.export, "wg.pem"), "rb") as f:
            assert f.read(10) == b"-----BEGIN"
        code, line = check(build, m)
        assert code == CRITICAL and "cannot be exported" in line, line


def test_missing_path_is_an_error(build, keyfs_bin, tmp_path):
    """A live path that does not exist (yet) is reported and CRITICAL."""
    store = str(tmp_path / "store")
    os.makedirs(store)
    gone = tmp_path / "no-such-dir"
    for m in mounted_with(keyfs_bin, tmp_path, store,
                          f"[keyset wg]\npath = {gone}\ninclude = *.conf\n"):
        m.unlock()
        assert os.listdir(m.export) == ["README.txt"]
        assert re.search(r"^  wg +NOT EXPORTED: path .*No such file or directory$",
                         m.status(), re.M), m.status()
        code, line = check(build, m)
        assert code == CRITICAL, line
