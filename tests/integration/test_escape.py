"""Text from outside keyfs in what keyfs writes: a file name in a live
keyset's directory holding a line feed and terminal escapes reaches the
reason the keyset cannot be exported. The status report, README.txt,
keyfsctl check and the metrics file show it escaped: no line of its own,
no control byte."""
import os
import re
import shutil

import pytest

from conftest import run, wait_for
from test_members import mounted_with

EVIL = "evil\nOK: fake\x1b[2J\x1b]0;title\x07"
# as escape.h writes it (C escapes, \xNN for the other control bytes)
SHOWN = "evil\\nOK: fake\\x1b[2J\\x1b]0;title\\x07"


def no_control(text, what):
    """Line feeds end lines; no other byte below 0x20, no DEL."""
    bad = [c for c in text if (ord(c) < 0x20 and c != "\n") or ord(c) == 0x7f]
    assert not bad, f"{what} holds control bytes {bad!r}:\n{text!r}"


def evil_live(tmp_path):
    """A live keyset whose directory holds a well-named key and EVIL."""
    live = tmp_path / "root" / "srv"
    live.mkdir(parents=True)
    (live / "good.key").write_text("k\n")
    (live / EVIL).write_text("not a key name\n")
    return str(live)


def conf(live, prom=None):
    text = f"[keyset srv]\npath = {live}\ninclude = *\n"
    if prom:
        text += f"[metrics]\nfile = {prom}\n"
    return text


@pytest.fixture
def evil(keyfs_bin, tmp_path):
    """keyfs over a store keyset (web) and the live keyset srv, writing a
    metrics file (m.prom)."""
    store = tmp_path / "store"
    (store / "web").mkdir(parents=True)
    (store / "web" / "tls.key").write_text("w\n")
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    prom = textfile / "keyfs.prom"
    yield from mounted_with(keyfs_bin, tmp_path, str(store), conf(evil_live(tmp_path), prom),
                            prom=prom)


def test_member_name_escaped_everywhere(evil, build):
    m, prom = evil, evil.prom
    m.unlock()

    status = m.status()
    no_control(status, "status")
    assert re.search(r"^  srv +NOT EXPORTED: member \"" + re.escape(SHOWN) + '"',
                     status, re.M), status
    assert not any(line.startswith("OK: fake") for line in status.splitlines()), status

    readme_path = os.path.join(m.export, "README.txt")
    assert wait_for(lambda: "srv: NOT EXPORTED" in open(readme_path).read(), 20), \
        open(readme_path).read()
    readme = open(readme_path).read()
    no_control(readme, "README.txt")
    assert f'srv: NOT EXPORTED, no backup here: member "{SHOWN}"' in readme, readme
    assert not any(line.startswith("OK: fake") for line in readme.splitlines())

    res = run([os.path.join(build, "keyfsctl"), "-m", m.path, "check"], check=False)
    assert res.returncode == 2, res.stdout + res.stderr  # CRITICAL: cannot be exported
    no_control(res.stdout, "keyfsctl check")
    assert len(res.stdout.splitlines()) == 1, res.stdout

    assert wait_for(lambda: prom.exists() and "srv" in prom.read_text(), 20)
    text = prom.read_text()
    no_control(text, "the metrics file")
    assert 'keyfs_keyset_backup_state{keyset="srv",state="unexportable"} 1' in text, text
    tool = shutil.which("promtool")
    if tool:
        res = run([tool, "check", "metrics"], input=text, check=False)
        assert res.returncode == 0, res.stdout + res.stderr

    log = m.logtext()
    assert "\x1b" not in log and "\x07" not in log
    assert not any(line.startswith("OK: fake") for line in log.splitlines())
