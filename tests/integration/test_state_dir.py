"""keyfs' own state apart from the keystore: state.dir names where the seal
cache, verifiers, hints and versions live; the store then holds keys only."""
import os
import shutil

from conftest import PASSWORD, Mount, age_decrypt, run


def test_state_dir_elsewhere(keyfs_bin, tmp_path, store):
    state = tmp_path / "state"
    m = Mount(keyfs_bin, str(tmp_path), store).start(opts=f"work_factor=10,state_dir={state}")
    try:
        m.unlock()
        assert m.control("hint the usual one") == 0
        shutil.copyfile(os.path.join(m.export, "web.pem"), tmp_path / "web.pem")
        m.stop()
    finally:
        m.kill()
    assert age_decrypt(tmp_path / "web.pem", tmp_path / "web.tar", PASSWORD).returncode == 0
    assert not os.path.exists(os.path.join(store, ".keyfs")), "the store holds keys only"
    assert (state / "cache" / "web").is_file() and (state / "verifier").is_file()
    assert (state / "meta" / "hint").read_text() == "the usual one"
    assert oct(os.stat(state).st_mode & 0o777) == "0o700"


def test_state_dir_on_another_filesystem_refused(keyfs_bin, tmp_path, store):
    state = "/dev/shm/keyfs-test-state-%d" % os.getpid()
    (tmp_path / "mnt").mkdir()
    try:
        res = run([keyfs_bin, "-f", "-o", f"store={store},state_dir={state}", str(tmp_path / "mnt")],
                  check=False, timeout=30)
    finally:
        shutil.rmtree(state, ignore_errors=True)
    assert res.returncode != 0
    assert "the state directory must be on the store's filesystem" in res.stderr
