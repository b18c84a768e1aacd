"""The status stays the same size however many keysets there are: past
64 keysets it shows only those with problems and the oldest changes not
backed up, and says so; .keysets (keyfsctl list, --json too) has a line
for every keyset, in fields, made as it is read: a read anywhere in it
gives the same bytes as reading it whole."""
import json
import os
import re

from conftest import Mount, run, wait_for

# more keysets than .keysets makes lines for at a time (256)
N = 600


def make_store(path, n):
    os.makedirs(path)
    for i in range(n):
        d = os.path.join(path, f"k{i:03d}")
        os.mkdir(d, 0o700)
        with open(os.path.join(d, "key"), "wb") as f:
            f.write(os.urandom(32))
    # one that cannot be exported: a FIFO among its members
    os.mkfifo(os.path.join(path, "k007", "pipe"))


def keyset_lines(status):
    return [line for line in status.splitlines() if re.match(r"^  k\d{3}\s", line)]


def test_status_is_bounded_and_the_list_has_every_keyset(build, keyfs_bin, tmp_path):
    store = str(tmp_path / "store")
    make_store(store, N)
    m = Mount(keyfs_bin, str(tmp_path), store)
    m.start()
    try:
        m.unlock()
        # every keyset examined: the problem is known
        assert wait_for(lambda: "k007" in m.status(), 20), m.status()
        status = m.status()
        assert f"({N} keysets: 1 with problems, and the 16 oldest changes not backed up " \
               "are shown; every keyset: keyfsctl list)" in status, status
        lines = keyset_lines(status)
        assert len(lines) == 17, lines
        assert re.match(r"^  k007\s+NOT EXPORTED: ", lines[0]), lines[0]
        # the oldest changes: never backed up, each with its line
        assert all("never backed up" in line for line in lines[1:]), lines
        assert re.search(rf"^backups: 0/{N} backed up, 0 changed since last backup, "
                         rf"{N - 1} never backed up$", status, re.M), status

        # back up a few: they leave the pending list, others take their place
        shown = [line.split()[0] for line in lines[1:4]]
        for name in shown:
            run(["cp", os.path.join(m.export, name + ".pem"), str(tmp_path / "copy.pem")])
        status = m.status()
        assert not set(shown) & {line.split()[0] for line in keyset_lines(status)}, status
        assert re.search(rf"^backups: 3/{N} backed up", status, re.M), status

        # sealed, so that the list reads the same twice
        assert wait_for(lambda: f"sealed {N - 1}/{N} (0 queued" in m.status(), 30), m.status()
        with open(os.path.join(m.path, ".keysets")) as f:
            text = f.read()
        rows = text.splitlines()
        assert rows[0] == ("# keyset\tstate\tsealed_at\tfingerprint\tsealed_by\t"
                           "inactive_versions\tbackup\tchanged_at\tbackup_at\tbackup_by\t"
                           "problem")
        assert len(rows) == N + 1
        fields = {r.split("\t")[0]: r.split("\t") for r in rows[1:]}
        assert sorted(fields) == [f"k{i:03d}" for i in range(N)]
        assert all(len(f) == 11 for f in fields.values())
        assert fields["k007"][1] == "not-exported" and "pipe" in fields["k007"][10]
        assert fields[shown[0]][6] == "backed-up" and fields[shown[0]][9] == "cp"
        assert fields[shown[0]][1] == "sealed"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", fields[shown[0]][2])
        # the fingerprint once the keyset was read in this daemon's life
        assert re.fullmatch(r"[0-9a-f]{64}|-", fields[shown[0]][3])

        # small reads, and reads back and forth, give the same bytes
        fd = os.open(os.path.join(m.path, ".keysets"), os.O_RDONLY)
        try:
            parts, off = [], 0
            while True:
                part = os.pread(fd, 1000, off)
                if not part:
                    break
                parts.append(part)
                off += len(part)
            assert b"".join(parts) == text.encode()
            raw = text.encode()
            for off in (len(raw) - 10, 5, 70000, 69000, 0, len(raw) // 2, len(raw) + 5):
                assert os.pread(fd, 4096, off) == raw[off:off + 4096], off
        finally:
            os.close(fd)

        res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "list"])
        assert res.stdout == text
        res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "list", "--json"])
        rows = json.loads(res.stdout)
        assert len(rows) == N
        byname = {r["keyset"]: r for r in rows}
        assert byname["k007"]["state"] == "not-exported"
        assert byname["k007"]["fingerprint"] is None
        assert byname[shown[0]]["backup"] == "backed-up"
        assert byname[shown[0]]["inactive_versions"] == []
        m.stop()
    finally:
        m.kill()
