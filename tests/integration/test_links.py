"""Symbolic links resolved against the keyset they belong to: each link
target of conf/l -> .. and conf/server.key -> l/../../secret stays inside
on its own, but the second leads out through the first. Such a tree is
refused at import (the keystore and the live path unchanged, the member
named in the log) and at export (the keyset reported with the member, not
offered in export/), while certbot's live/ -> archive/ links, and a link to
a link, still go out and come back."""
import errno
import io
import os
import shutil
import tarfile

import pytest

from conftest import PASSWORD, age_decrypt, age_seal, run, tree_digest
from test_members import describe, mounted_with, untar

CONF = "[import]\nmax_size = 33554432\nmax_total = 67108864\nmax_work_factor = 18\n"
CHAIN = [("conf/l", ".."), ("conf/server.key", "l/../../secret")]


def live_conf(root):
    """app: a live keyset holding a key; tls: a certbot tree; good: one key."""
    return CONF + f"""
[keyset app]
path = {root}/etc/myapp
include = **

[keyset tls]
path = {root}/etc/letsencrypt
include = live/** archive/**

[keyset good]
path = {root}/etc/good
include = *.key
"""


def write(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def make_root(root):
    write(os.path.join(root, "secret"), "outside the keyset\n")
    write(os.path.join(root, "etc", "myapp", "conf", "app.key"), "app key\n")
    write(os.path.join(root, "etc", "good", "good.key"), "good key\n")
    le = os.path.join(root, "etc", "letsencrypt")
    for n in ("cert", "privkey"):
        write(os.path.join(le, "archive", "example.org", f"{n}1.pem"), f"{n} 1\n")
    live = os.path.join(le, "live", "example.org")
    os.makedirs(live)
    for n in ("cert", "privkey"):
        os.symlink(f"../../archive/example.org/{n}1.pem", os.path.join(live, f"{n}.pem"))
    # a link to a link, and one through a directory link
    os.symlink("privkey.pem", os.path.join(live, "key.pem"))
    os.symlink("example.org", os.path.join(le, "live", "current"))
    os.symlink("../current/key.pem", os.path.join(live, "current-key.pem"))


@pytest.fixture
def links(keyfs_bin, tmp_path):
    store = str(tmp_path / "store")
    os.makedirs(store)
    root = str(tmp_path / "root")
    make_root(root)
    yield from mounted_with(keyfs_bin, tmp_path, store, live_conf(root), root=root)


def sealed_chain(tmp_path, name):
    """A sealed tar of keyset name holding the escaping chain and a key."""
    raw = tmp_path / f"{name}.tar"
    with tarfile.open(raw, "w", format=tarfile.PAX_FORMAT) as t:
        for d in (name, f"{name}/conf"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            t.addfile(info)
        key = tarfile.TarInfo(f"{name}/conf/app.key")
        key.size, key.mode = 4, 0o600
        t.addfile(key, io.BytesIO(b"new\n"))
        for path, target in CHAIN:
            info = tarfile.TarInfo(f"{name}/{path}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
            t.addfile(info)
    out = tmp_path / f"{name}.pem"
    age_seal(raw, out, PASSWORD)
    return out


def links_below(path):
    """Every symlink below path, as path -> target (tree_digest skips none
    but follows them; this says what a restore would have planted)."""
    found = []
    for d, dirs, files in os.walk(path):
        for n in dirs + files:
            p = os.path.join(d, n)
            if os.path.islink(p):
                found.append(f"{os.path.relpath(p, path)} -> {os.readlink(p)}")
    return sorted(found)


@pytest.mark.parametrize("name", ["app", "plain"], ids=["live", "dir-store"])
def test_import_of_a_link_chain_out_is_refused(links, tmp_path, name):
    m = links
    m.unlock()
    pem = sealed_chain(tmp_path, name)
    live = os.path.join(m.root, "etc", "myapp")
    before = (tree_digest(m.store), tree_digest(live), links_below(m.root))
    with pytest.raises(OSError) as e:
        with open(os.path.join(m.path, "import", f"{name}.pem"), "wb") as f:
            f.write(pem.read_bytes())
    assert e.value.errno == errno.EINVAL
    res = run(["cp", str(pem), os.path.join(m.path, "import", "again.pem")], check=False)
    assert res.returncode != 0 and "Invalid argument" in res.stderr, res.stderr
    assert (tree_digest(m.store), tree_digest(live), links_below(m.root)) == before
    assert not os.path.exists(os.path.join(m.store, "plain"))
    log = m.logtext()
    assert f'"{name}"' in log and '"conf/server.key"' in log and "leaving the keyset" in log, log
    assert "import failed" in m.status()


def test_live_keyset_holding_a_link_chain_out_is_reported(links, tmp_path):
    m = links
    conf = os.path.join(m.root, "etc", "myapp", "conf")
    for path, target in CHAIN:
        os.symlink(target, os.path.join(m.root, "etc", "myapp", path))
    assert os.path.realpath(os.path.join(conf, "server.key")) == os.path.join(m.root, "secret")
    m.unlock()
    status = m.status()
    assert "app" in status and '"conf/server.key"' in status, status
    assert "leaving the keyset" in status, status
    names = os.listdir(m.export)
    assert "app.pem" not in names and "good.pem" in names and "tls.pem" in names, names
    dst = tmp_path / "dst"
    res = run(["rsync", "-a", m.export + "/", str(dst) + "/"], check=False)
    assert res.returncode == 0, res.stderr
    assert sorted(n for n in os.listdir(dst) if n.endswith(".pem")) == ["good.pem", "tls.pem"]


def test_store_keyset_holding_a_link_chain_out_is_reported(links):
    m = links
    conf = os.path.join(m.store, "chain", "conf")
    os.makedirs(conf)
    write(os.path.join(conf, "real.key"), "real\n")
    for path, target in CHAIN:
        os.symlink(target, os.path.join(m.store, "chain", path))
    m.unlock()
    status = m.status()
    assert "chain" in status and '"conf/server.key"' in status, status
    assert "chain.pem" not in os.listdir(m.export)
    with open(os.path.join(m.export, "good.pem"), "rb") as f:
        assert f.read(64).startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")


def test_certbot_links_round_trip(links, tmp_path):
    m = links
    src = os.path.join(m.root, "etc", "letsencrypt")
    want = describe(src)
    assert "live/example.org/key.pem 0 0 777 l privkey.pem" in want[0], want[0]
    m.unlock()
    pem = tmp_path / "tls.pem"
    with open(os.path.join(m.export, "tls.pem"), "rb") as f:
        pem.write_bytes(f.read())
    res = age_decrypt(pem, tmp_path / "tls.tar", PASSWORD)
    assert res.returncode == 0, res.stdout
    out = str(tmp_path / "out")
    untar(str(tmp_path / "tls.tar"), out)
    os.unlink(os.path.join(out, "tls", "KEYSET.ini"))
    os.unlink(os.path.join(out, "tls", "KEYSET.sig"))
    assert describe(os.path.join(out, "tls")) == want
    with open(os.path.join(out, "tls", "live", "current", "key.pem")) as f:
        assert f.read() == "privkey 1\n"

    # All gone: the import puts the same tree back, links and all.
    shutil.rmtree(src)
    os.makedirs(src)
    shutil.copyfile(pem, os.path.join(m.path, "import", "tls.pem"))
    assert describe(src) == want
    assert "restored" in m.logtext()
