"""Exports sealed to public keys (seal.recipients): opened with stock age
and real keys from age-keygen and ssh-keygen, sealed with no password on
the server, kept byte-identical while the recipients stay, and resealed
exactly where they change."""
import contextlib
import hashlib
import os
import re
import signal
import time

import pytest

from conftest import PASSWORD, Mount, age_decrypt, run, wait_for

KEYSETS = ("db", "web")


def age_keygen(path):
    """A new age identity file; returns its public key."""
    run(["age-keygen", "-o", path])
    with open(path) as f:
        return re.search(r"^# public key: (age1\S+)$", f.read(), re.M).group(1)


def ssh_keygen(path, comment):
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path])
    with open(path + ".pub") as f:
        return f.read().strip()


@pytest.fixture
def keys(tmp_path):
    """Two administrators: one with an age key, one with an ssh key."""
    d = tmp_path / "keys"
    d.mkdir()
    age_pub = age_keygen(str(d / "alice.txt"))
    ssh_pub = ssh_keygen(str(d / "bob"), "bob@laptop")
    return {"dir": d, "age": str(d / "alice.txt"), "age_pub": age_pub,
            "ssh": str(d / "bob"), "ssh_pub": ssh_pub}


def start_fails(keyfs_bin, tmp_path, opts):
    """keyfs refuses to start: its exit and what it said on the terminal."""
    mnt = tmp_path / "mnt"
    mnt.mkdir(exist_ok=True)
    res = run([keyfs_bin, "-f", "-o", opts, str(mnt)], check=False, timeout=20)
    assert res.returncode != 0
    assert not os.path.ismount(str(mnt))
    return res.stderr


def write_recipients(path, *lines):
    with open(path, "w") as f:
        f.write("# keyfs backup recipients\n\n" + "\n".join(lines) + "\n")
    os.chmod(path, 0o644)


@contextlib.contextmanager
def mounted(keyfs_bin, tmp_path, store, *lines):
    """keyfs sealing to a recipients file of these lines; stopped cleanly."""
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, *lines)
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start(opts=f"work_factor=10,recipients={rcpt}")
        yield m, rcpt
        m.stop()
    finally:
        m.kill()


def wait_sealed(m, n, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        status = m.status()
        if f"sealed {n}/{n} (0 queued" in status:
            return status
        assert time.monotonic() < deadline, status
        time.sleep(0.05)


def open_with(identity, pem, out):
    """Stock age with an identity file: no terminal needed."""
    res = run(["age", "-d", "-i", identity, "-o", out, pem], check=False)
    return res.returncode, res.stderr


def members(tar):
    return sorted(run(["tar", "-tf", tar]).stdout.split())


def export_state(m, ks):
    p = os.path.join(m.export, f"{ks}.pem")
    st = os.stat(p)
    with open(p, "rb") as f:
        return (hashlib.sha256(f.read()).hexdigest(), st.st_ino, st.st_size, st.st_mtime_ns)


def test_sealed_to_age_and_ssh_keys_open_with_stock_age(keyfs_bin, tmp_path, store, keys):
    with mounted(keyfs_bin, tmp_path, store, keys["age_pub"], keys["ssh_pub"]) as (m, rcpt):
        # No password given: sealing starts at mount and nothing is ENOKEY.
        status = wait_sealed(m, 2)
        assert "password: not set" in status, status
        assert f"recipients: {rcpt}" in status, status
        # each file once, with the keys a restorer fetches from the safe
        assert f"recipients files: 1\n  {rcpt}: {keys['age_pub']}, ssh-ed25519 bob@laptop\n" \
            in status, status
        for ks in KEYSETS:
            assert re.search(rf"^  {ks} +sealed .* by recipients in {re.escape(rcpt)}  active",
                             status, re.M), status
            pem = str(tmp_path / f"{ks}.pem")
            run(["cp", os.path.join(m.export, f"{ks}.pem"), pem])
            with open(pem, "rb") as f:
                body = f.read()
            assert b"-----BEGIN AGE ENCRYPTED FILE-----" in body
            # Each administrator's key opens it alone.
            for ident in (keys["age"], keys["ssh"]):
                out = str(tmp_path / f"{ks}.tar")
                rc, err = open_with(ident, pem, out)
                assert rc == 0, err
                names = members(out)
                assert f"{ks}/KEYSET.ini" in names
                os.unlink(out)
            # A password opens nothing: there is no scrypt stanza.
            res = age_decrypt(pem, str(tmp_path / "x.tar"), PASSWORD)
            assert res.returncode != 0
        with open(os.path.join(m.export, "README.txt")) as f:
            readme = f.read()
        assert f"sealed by:   recipients in {rcpt}: {keys['age_pub']}, ssh-ed25519 bob@laptop" \
            in readme, readme
        assert "age -d -i" in readme


def test_wrong_key_does_not_open(keyfs_bin, tmp_path, store, keys):
    other = str(tmp_path / "other.txt")
    age_keygen(other)
    with mounted(keyfs_bin, tmp_path, store, keys["age_pub"]) as (m, rcpt):
        wait_sealed(m, 2)
        pem = os.path.join(m.export, "db.pem")
        rc, err = open_with(other, pem, str(tmp_path / "db.tar"))
        assert rc != 0 and "no identity matched" in err, err
        rc, err = open_with(keys["ssh"], pem, str(tmp_path / "db.tar"))
        assert rc != 0, err


@pytest.mark.parametrize("line,why", [
    ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 rsa@host", "ssh-rsa keys are not supported"),
    ("age1pq1" + "q" * 60, "post-quantum age1pq recipients are not supported"),
    ("age1yubikey1qwt50d05nh5vutpdzmlg5wn80xq5negm4uj9ghv0snvdd3yysf5yw3rhl3t",
     "age plugin recipients are not supported"),
    ("age1notarecipient", "malformed age1 recipient"),
])
def test_unsupported_line_stops_the_start(keyfs_bin, tmp_path, store, keys, line, why):
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, keys["age_pub"], line)
    err = start_fails(keyfs_bin, tmp_path, f"store={store},recipients={rcpt}")
    # "# ..." and the empty line come first: the line is the 4th.
    assert f"{rcpt}:4: {why}" in err, err


def test_recipients_file_others_may_write_is_refused(keyfs_bin, tmp_path, store, keys):
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, keys["age_pub"])
    os.chmod(rcpt, 0o666)
    err = start_fails(keyfs_bin, tmp_path, f"store={store},recipients={rcpt}")
    assert f"{rcpt}: refused: whoever can write it chooses who opens every backup" in err, err


def test_byte_identical_across_restart_and_sighup(keyfs_bin, tmp_path, store, keys):
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, keys["age_pub"], keys["ssh_pub"])
    m = Mount(keyfs_bin, str(tmp_path), store)
    opts = f"work_factor=10,recipients={rcpt}"
    try:
        m.start(opts=opts)
        wait_sealed(m, 2)
        before = {ks: export_state(m, ks) for ks in KEYSETS}
        m.stop()
        m.start(opts=opts)
        assert {ks: export_state(m, ks) for ks in KEYSETS} == before
        # The same keys in another order, with other comments and spacing:
        # the same recipients, so nothing is sealed again.
        write_recipients(rcpt, "  " + keys["ssh_pub"].rsplit(" ", 1)[0] + "  other-comment",
                         "# alice", keys["age_pub"])
        m.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        wait_sealed(m, 2)
        assert {ks: export_state(m, ks) for ks in KEYSETS} == before
        assert not re.search(r"sealed (keyset|\d+ keysets)", m.logtext().split("mounted")[-1])
        m.stop()
    finally:
        m.kill()


def test_changes_made_while_stopped_are_sealed_after_the_start(keyfs_bin, tmp_path, store,
                                                                keys):
    """A keyset changed and one added while keyfs was stopped are sealed
    after the next start with nobody reading export/: the seals of the
    clean stop are compared with the store once the watcher has its
    stamps, and a keyset without a seal is queued at once. An unchanged
    keyset keeps its seal."""
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, keys["age_pub"])
    cache = os.path.join(store, ".keyfs", "cache")
    m = Mount(keyfs_bin, str(tmp_path), store)
    opts = f"work_factor=10,recipients={rcpt}"

    def cached(ks):
        with open(os.path.join(cache, ks), "rb") as f:
            return f.read()
    try:
        m.start(opts=opts)
        wait_sealed(m, 2)
        before = {ks: cached(ks) for ks in KEYSETS}
        m.stop()
        with open(os.path.join(store, "web", "ed25519.pub"), "a") as f:
            f.write("# rotated while stopped\n")
        os.mkdir(os.path.join(store, "mail"), 0o700)
        with open(os.path.join(store, "mail", "dkim.key"), "w") as f:
            f.write("mail-key\n")
        m.start(opts=opts)
        assert wait_for(lambda: os.path.exists(os.path.join(cache, "mail")) and
                        cached("web") != before["web"], 10), m.logtext()
        assert cached("db") == before["db"]
        for ks, member, want in (("web", "ed25519.pub", b"# rotated while stopped\n"),
                                 ("mail", "dkim.key", b"mail-key\n")):
            out = tmp_path / f"{ks}.tar"
            assert open_with(keys["age"], os.path.join(m.export, f"{ks}.pem"), out)[0] == 0
            x = tmp_path / f"x-{ks}"
            x.mkdir()
            run(["tar", "-xf", str(out), "-C", str(x)])
            found = [os.path.join(d, f) for d, _, fs in os.walk(x) for f in fs if f == member]
            assert len(found) == 1, found
            with open(found[0], "rb") as f:
                assert f.read().endswith(want)
        m.stop()
    finally:
        m.kill()


def test_changed_recipients_reseal_exactly_the_keysets_they_cover(keyfs_bin, tmp_path, store,
                                                                   keys):
    everyone = str(tmp_path / "recipients.txt")
    dbonly = str(tmp_path / "db-recipients.txt")
    write_recipients(everyone, keys["age_pub"])
    write_recipients(dbonly, keys["ssh_pub"])
    conf = str(tmp_path / "keyfs.ini")
    with open(conf, "w") as f:
        f.write(f"[seal]\nrecipients = {everyone}\n\n[keyset db]\nrecipients = {dbonly}\n")
    m = Mount(keyfs_bin, str(tmp_path), store)
    try:
        m.start("-c", conf)
        status = wait_sealed(m, 2)
        assert re.search(rf"^  db +sealed .* by recipients in {re.escape(dbonly)}  active",
                         status, re.M), status
        with open(os.path.join(m.export, "README.txt")) as f:
            readme = f.read()
        assert f"sealed by:   recipients in {everyone}: {keys['age_pub']}\n" in readme, readme
        assert f"    db.pem: recipients in {dbonly}: ssh-ed25519 bob@laptop\n" in readme, readme
        # db is sealed to its own recipients alone.
        assert open_with(keys["ssh"], os.path.join(m.export, "db.pem"),
                         str(tmp_path / "o.tar"))[0] == 0
        assert open_with(keys["age"], os.path.join(m.export, "db.pem"),
                         str(tmp_path / "o.tar"))[0] != 0
        before = {ks: export_state(m, ks) for ks in KEYSETS}
        # A new administrator joins the team that opens everything but db.
        carol = str(tmp_path / "keys" / "carol.txt")
        write_recipients(everyone, keys["age_pub"], age_keygen(carol))
        assert m.control("reload") == 0
        deadline = time.monotonic() + 10
        while export_state(m, "web")[0] == before["web"][0]:
            assert time.monotonic() < deadline, m.logtext()
            time.sleep(0.05)
        wait_sealed(m, 2)
        after = {ks: export_state(m, ks) for ks in KEYSETS}
        assert after["db"] == before["db"]
        assert after["web"][3] > before["web"][3], "a reseal has a new time for rsync"
        for ident in (keys["age"], carol):
            assert open_with(ident, os.path.join(m.export, "web.pem"),
                             str(tmp_path / "o.tar"))[0] == 0
        # A file now refused keeps the recipients sealing as they were.
        write_recipients(everyone, keys["age_pub"], "ssh-rsa AAAAB3NzaC1yc2E rsa@host")
        assert m.control("reload") != 0
        assert f"{everyone}:4: ssh-rsa keys are not supported" in m.logtext()
        assert "recipients not reloaded" in m.logtext()
        time.sleep(0.5)
        assert {ks: export_state(m, ks) for ks in KEYSETS} == after
        m.stop()
    finally:
        m.kill()


def test_own_password_beats_global_recipients(keyfs_bin, tmp_path, store, keys):
    with mounted(keyfs_bin, tmp_path, store, keys["age_pub"]) as (m, rcpt):
        wait_sealed(m, 2)
        assert m.control(f"password --keyset web {PASSWORD}") == 0
        status = wait_sealed(m, 2)
        assert re.search(r"^  web +sealed .* by its own password  active", status, re.M), status
        assert re.search(r"^  db +sealed .* by recipients in ", status, re.M), status
        web = str(tmp_path / "web.pem")
        run(["cp", os.path.join(m.export, "web.pem"), web])
        assert age_decrypt(web, str(tmp_path / "web.tar"), PASSWORD).returncode == 0
        assert open_with(keys["age"], web, str(tmp_path / "w.tar"))[0] != 0


def test_rsync_and_cp_of_recipient_exports(keyfs_bin, tmp_path, store, keys):
    """A backup job with no password anywhere: the second rsync sends nothing."""
    dst = str(tmp_path / "backup")
    with mounted(keyfs_bin, tmp_path, store, keys["ssh_pub"]) as (m, rcpt):
        run(["rsync", "-a", m.export + "/", dst + "/"])
        res = run(["rsync", "-a", "--itemize-changes", m.export + "/", dst + "/"])
        assert res.stdout.strip() == "", res.stdout
        for ks in KEYSETS:
            assert open_with(keys["ssh"], os.path.join(dst, f"{ks}.pem"),
                             str(tmp_path / f"{ks}.tar"))[0] == 0


def test_own_export_restores_with_an_identity(build, keyfs_bin, tmp_path, store, keys):
    """The round trip an administrator runs: back up with no password on the
    server, then verify and restore the copy with the identity alone."""
    ctl = os.path.join(build, "keyfsctl")
    with mounted(keyfs_bin, tmp_path, store, keys["age_pub"], keys["ssh_pub"]) as (m, rcpt):
        copy = str(tmp_path / "db.pem")
        run(["cp", os.path.join(m.export, "db.pem"), copy])
        verify = os.path.join(m.path, "verify", "db.pem")
        res = run(["cp", copy, verify], check=False)
        assert res.returncode != 0 and "Required key not available" in res.stderr, res.stderr
        run([ctl, "-m", m.path, "identity", "add", keys["ssh"]])
        run(["cp", copy, verify])
        # The key in the store is lost; the copy brings it back.
        with open(os.path.join(store, "db", "master.key"), "rb") as f:
            key = f.read()
        os.unlink(os.path.join(store, "db", "master.key"))
        os.unlink(os.path.join(store, "db", "key-id.txt"))
        os.rmdir(os.path.join(store, "db"))
        run(["cp", copy, os.path.join(m.path, "import", "db.pem")])
        with open(os.path.join(store, "db", "master.key"), "rb") as f:
            assert f.read() == key


def sealed_lines(text):
    """The log's seal lines: (keysets each says, its name or None)."""
    lines = []
    for m in re.finditer(r'info: sealed (?:keyset "([^"]+)"|(\d+) keysets)$', text, re.M):
        lines.append((1, m.group(1)) if m.group(1) else (int(m.group(2)), None))
    return lines


def test_log_says_a_batch_of_seals(keyfs_bin, tmp_path, keys):
    """A first mount of many keysets logs a line per batch of seals, not
    per keyset; together they count every keyset once. -d logs each one.
    A single keyset changed later is named."""
    store = tmp_path / "store"
    n = 300
    for i in range(n):
        (store / f"ks{i}").mkdir(parents=True, mode=0o700)
        (store / f"ks{i}" / "key").write_bytes(os.urandom(32))
    rcpt = str(tmp_path / "recipients.txt")
    write_recipients(rcpt, keys["age_pub"])
    m = Mount(keyfs_bin, str(tmp_path), str(store))
    try:
        m.start("-d", opts=f"work_factor=10,recipients={rcpt}")
        wait_sealed(m, n, timeout=60)
        assert wait_for(lambda: sum(k for k, _ in sealed_lines(m.logtext())) == n, timeout=10)
        text = m.logtext()
        batches = sealed_lines(text)
        assert len(batches) < n // 2, batches
        each = re.findall(r'debug: sealed keyset "(ks\d+)"$', text, re.M)
        assert sorted(each) == sorted(f"ks{i}" for i in range(n))
        (store / "ks7" / "key").write_bytes(os.urandom(32))
        assert wait_for(lambda: len(sealed_lines(m.logtext())) > len(batches), timeout=10)
        assert sealed_lines(m.logtext())[len(batches):] == [(1, "ks7")]
        m.stop()
    finally:
        m.kill()


def test_sealing_leaves_access_times(keyfs_bin, tmp_path, store, keys):
    """keyfs reads keys for their backup as backup tools read (O_NOATIME):
    a key's access time still tells when something last used the key."""
    def aged(path):
        """The access time an hour before the change: the next read
        updates it, unless the reader asks not to."""
        st = os.stat(path)
        os.utime(path, ns=(st.st_mtime_ns - 3600 * 10**9, st.st_mtime_ns))
        return os.stat(path).st_atime_ns

    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    before = aged(probe)
    probe.read_bytes()
    if os.stat(probe).st_atime_ns == before:
        pytest.skip("this filesystem keeps no access times (noatime)")
    key, top = os.path.join(store, "web", "ed25519.key"), os.path.join(store, "web")
    times = {p: aged(p) for p in (key, top)}
    with mounted(keyfs_bin, tmp_path, store, keys["age_pub"]) as (m, _):
        wait_sealed(m, 2)
        assert os.path.getsize(os.path.join(m.export, "web.pem")) > 0
        assert {p: os.stat(p).st_atime_ns for p in times} == times
