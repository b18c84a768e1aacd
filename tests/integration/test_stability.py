"""Cost and stability of exports (DESIGN.md section 2, "Cost and stability").

The sealed bytes of an export are cached (on disk, beside the store) per
keyset version and password, so backup tools see an unchanged file while
neither changes: rsync's quick check, restic's and borg's change detection
all skip it, across daemon restarts too. The attributes follow the bytes:
st_ino is stable per keyset, st_mtime/st_ctime are when the bytes were
sealed, and they change exactly when the bytes do.

Two timing facts shape these tests: the kernel caches attributes for
attr_timeout = 1 s, and st_mtime has one-second resolution, so a change is
only visible in mtime if it happens in a later second than the seal before
it. Where that matters a test waits (bounded polling, or one 1.1 s sleep)."""
import hashlib
import json
import os
import re
import secrets
import time

import pytest

from conftest import PASSWORD, Mount, age_decrypt, run

OTHER = "Other-Horse-8"
ATTR_SETTLE = 1.1       # attr_timeout (1 s) plus a margin
PROGRESS = re.compile(r"sealed\s+(\d+)\s*/\s*(\d+)")


def pems(mount):
    return sorted(f for f in os.listdir(mount.export) if f.endswith(".pem"))


def read_all(mount):
    """Reads every export; a read waits for its keyset's own seal."""
    out = {}
    for f in pems(mount):
        with open(os.path.join(mount.export, f), "rb") as fh:
            out[f] = fh.read()
    return out


def stats(mount):
    return {f: os.stat(os.path.join(mount.export, f)) for f in pems(mount)}


def sealed(mount):
    """Every export sealed and its attributes past the kernel's cache; the
    next second has begun, so a later seal gets a later mtime."""
    data = read_all(mount)
    time.sleep(ATTR_SETTLE)
    return data


def wait_for(pred, timeout, step=0.05):
    """Polls pred() until it returns a true value or timeout passes; returns
    the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def sha256_dir(path):
    return {f: hashlib.sha256(open(os.path.join(path, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(path)) if f.endswith(".pem")}


def rsync(mount, dst):
    # README.txt is left out: its text lists the seal times and its mtime is
    # the daemon's start, so it is not one of the sealed exports under test.
    res = run(["rsync", "-a", "--stats", "--exclude=README.txt", mount.export + "/", str(dst) + "/"])
    m = re.search(r"^Number of regular files transferred: (\d+)$", res.stdout, re.M)
    assert m, res.stdout
    return int(m.group(1))


def add_keysets(store, n):
    """n more keysets beside the demo store's web and db: a 32-byte key and
    an Ed25519 private key each."""
    for i in range(n):
        d = os.path.join(store, f"extra{i:02d}")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "master.key"), "wb", opener=lambda p, f: os.open(p, f, 0o600)) as fh:
            fh.write(secrets.token_bytes(32))
        run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", os.path.join(d, "ed25519.key")])
        os.chmod(os.path.join(d, "ed25519.key"), 0o600)
    backdate(store)


def backdate(store, age=3600):
    """Key files are rarely new: an hour-old store keeps the seal times apart
    from the keys' own mtimes (a fast test would otherwise seal in the very
    second the demo store was written)."""
    t = time.time() - age
    for d, dirs, files in os.walk(store):
        for f in files:
            os.utime(os.path.join(d, f), (t, t))
        os.utime(d, (t, t))


@pytest.fixture(autouse=True)
def old_store(store):
    backdate(store)
    return store


def test_rsync_sees_unchanged_exports_across_restart(mount, tmp_path):
    mount.unlock()
    sealed(mount)
    dst = tmp_path / "dst"
    assert rsync(mount, dst) == 2
    first = sha256_dir(dst)
    assert sorted(first) == ["db.pem", "web.pem"]
    inodes = {f: st.st_ino for f, st in stats(mount).items()}
    before = {f: (st.st_size, st.st_mtime) for f, st in stats(mount).items()}
    assert rsync(mount, dst) == 0

    mount.stop()
    mount.start()
    # A new daemon over the same store: nothing sealed in memory yet, the
    # cache on disk is revalidated by the same password.
    mount.unlock()
    after = {f: (st.st_size, st.st_mtime) for f, st in stats(mount).items()}
    assert rsync(mount, dst) == 0, f"(size, mtime) before the restart {before}, after {after}"
    assert after == before
    assert {f: st.st_ino for f, st in stats(mount).items()} == inodes
    assert sha256_dir(dst) == first
    fresh = tmp_path / "fresh"
    assert rsync(mount, fresh) == 2
    assert sha256_dir(fresh) == first
    assert {f: st.st_ino for f, st in stats(mount).items()} == inodes


def test_changed_keyset_reseals_only_itself(mount, store):
    mount.unlock()
    old = sealed(mount)
    old_st = stats(mount)
    with open(os.path.join(store, "web", "ed25519.pub"), "a") as f:
        f.write("# rotated\n")

    web = os.path.join(mount.export, "web.pem")
    # Ten bytes more do not change the export's size (tar pads members to
    # 512 bytes): only the bytes and the mtime tell the change.
    def changed():
        data = read_all(mount)
        return data["web.pem"] != old["web.pem"] and data
    new = wait_for(changed, 3)
    assert new, "web.pem kept its bytes after its keyset changed"
    assert new["web.pem"] != old["web.pem"]
    assert new["db.pem"] == old["db.pem"]
    st = wait_for(lambda: (s := os.stat(web)).st_mtime != old_st["web.pem"].st_mtime and s, 3)
    assert st, "web.pem's mtime did not change with its bytes"
    assert st.st_mtime > old_st["web.pem"].st_mtime
    assert st.st_ctime == st.st_mtime
    assert st.st_size == len(new["web.pem"])
    assert st.st_ino == old_st["web.pem"].st_ino
    assert read_all(mount)["web.pem"] == new["web.pem"]

    db = os.stat(os.path.join(mount.export, "db.pem"))
    o = old_st["db.pem"]
    assert (db.st_ino, db.st_size, db.st_mtime, db.st_ctime) == \
        (o.st_ino, o.st_size, o.st_mtime, o.st_ctime)


def test_new_password_reseals_every_export(mount, tmp_path):
    mount.unlock()
    old = sealed(mount)
    old_st = stats(mount)
    assert mount.control(f"password {OTHER}") == 0
    new = read_all(mount)
    assert sorted(new) == sorted(old) == ["db.pem", "web.pem"]
    for f in new:
        assert new[f] != old[f], f
        assert len(new[f]) == len(old[f]), f    # same plaintext, same work factor

    def moved():
        now = stats(mount)
        return all(now[f].st_mtime > old_st[f].st_mtime for f in now) and now
    now = wait_for(moved, 3)
    assert now, {f: (old_st[f].st_mtime, s.st_mtime) for f, s in stats(mount).items()}
    for f, st in now.items():
        assert st.st_size == len(new[f]) and st.st_ino == old_st[f].st_ino, f

    for f, data in new.items():
        src = tmp_path / f
        src.write_bytes(data)
        res = age_decrypt(src, tmp_path / (f + ".tar"), OTHER)
        assert res.returncode == 0, res.stdout
        (tmp_path / (f + ".tar")).unlink()
        res = age_decrypt(src, tmp_path / (f + ".old.tar"), PASSWORD)
        assert res.returncode != 0, f"{f} still opens with the old password"


def test_tar_while_resealing_sees_no_change(keyfs_bin, tmp_path, store):
    add_keysets(store, 12)
    m = Mount(keyfs_bin, str(tmp_path), store).start(opts="work_factor=14")
    try:
        m.unlock()
        old = sealed(m)
        assert len(old) == 14
        # Resealing 14 keysets at work factor 14 takes a moment: tar runs
        # while it is under way.
        assert m.control(f"password {OTHER}") == 0
        out = tmp_path / "all.tar"
        res = run(["tar", "-cf", str(out), "-C", m.path, "export"], check=False)
        assert "file changed as we read it" not in res.stderr
        assert res.returncode == 0, res.stderr
        assert res.stderr == ""

        x = tmp_path / "x"
        x.mkdir()
        run(["tar", "-xf", str(out), "-C", str(x)])
        assert sorted(f for f in os.listdir(x / "export") if f.endswith(".pem")) == sorted(old)
        for f in sorted(old):
            p = x / "export" / f
            text = p.read_text()
            assert text.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n"), f
            assert text.endswith("-----END AGE ENCRYPTED FILE-----\n"), f
            # Each archived file is whole: one seal, under one of the passwords.
            if age_decrypt(p, tmp_path / "o.tar", OTHER).returncode != 0:
                res = age_decrypt(p, tmp_path / "o.tar", PASSWORD)
                assert res.returncode == 0, f"{f} opens with neither password: {res.stdout}"
            (tmp_path / "o.tar").unlink()
        m.stop()
    finally:
        m.kill()


def test_restic_second_backup_adds_nothing(mount, tmp_path):
    mount.unlock()
    sealed(mount)
    base = tmp_path / "restic"
    base.mkdir()
    env = dict(os.environ, RESTIC_PASSWORD="restic-test-password",
               RESTIC_REPOSITORY=str(base / "repo"), RESTIC_CACHE_DIR=str(base / "cache"))
    run(["restic", "init"], env=env)

    def backup():
        res = run(["restic", "backup", "--json", "export"], env=env, cwd=mount.path)
        summary = [json.loads(line) for line in res.stdout.splitlines()
                   if line.startswith("{") and '"summary"' in line]
        assert summary, res.stdout
        return summary[-1]

    one = backup()
    assert one["files_new"] == 3, one        # two exports and README.txt
    two = backup()
    assert two["files_new"] == 0 and two["files_changed"] == 0, two
    assert two["files_unmodified"] == 3, two
    assert two["data_blobs"] == 0, two       # no file content read as new
    assert two["data_added"] == 0, two


def test_borg_second_backup_lists_no_changed_export(mount, tmp_path):
    mount.unlock()
    sealed(mount)
    base = tmp_path / "borg"
    base.mkdir()
    env = dict(os.environ, BORG_BASE_DIR=str(base), BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes",
               BORG_RELOCATED_REPO_ACCESS_IS_OK="yes", BORG_PASSPHRASE="")
    repo = str(base / "repo")
    run(["borg", "init", "-e", "none", repo], env=env)
    # borg does not keep a files-cache entry for the files with the newest
    # ctime of a run (timestamp granularity guard), so the run also archives
    # a marker file made after the seals, which is newer than every export.
    marker = base / "marker"
    marker.write_text("newest\n")

    def create(name):
        res = run(["borg", "create", "--list", "--filter=AME", f"{repo}::{name}", "export", str(marker)],
                  env=env, cwd=mount.path)
        return [tuple(line.split(" ", 1)) for line in res.stderr.splitlines()
                if re.match(r"^[AME] ", line)]

    one = create("one")
    assert {p for s, p in one if p.endswith(".pem")} == {"export/db.pem", "export/web.pem"}, one
    two = create("two")
    assert [(s, p) for s, p in two if p.endswith(".pem")] == [], two


def test_status_shows_background_sealing_progress(mount):
    assert mount.control(f"password {PASSWORD}") == 0
    # No export is opened: the worker pool seals both keysets by itself.
    done = wait_for(lambda: (m := PROGRESS.search(mount.status())) and m.group(1) == m.group(2) and m,
                    20, step=0.1)
    status = mount.status()
    assert done, status
    assert (int(done.group(1)), int(done.group(2))) == (2, 2), status
    assert "not sealed" not in status, status
