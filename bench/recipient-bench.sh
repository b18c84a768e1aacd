#!/bin/bash
# Cold seal in recipient mode (seal.recipients) against passphrase mode and
# against stock `tar -c | age -r` per keyset and against writing as many
# export-sized files, measured side by side (two rounds of keyfs and the
# files, alternated).
#
#   bench/recipient-bench.sh          100 000 keysets (8 in passphrase mode)
#   QUICK=1 bench/recipient-bench.sh  2 000 keysets (4 in passphrase mode)
#
# A seal counts as done when its cache file is in the state directory and
# synced; the clock runs from starting keyfs. Progress is followed in
# keyfs' log (a line per batch of seals, once its files are synced), not
# by listing the cache directory: a listing of 100 000 names is a tenth of
# a core taken from what is measured. One listing confirms the count at
# the end. Runs build/release/keyfs (or $KEYFS_BIN).
#
# On ext4, run it where nothing was deleted in the last minutes (TMPDIR on
# a fresh filesystem): ext4 skips inodes deleted recently when it
# allocates one, up to five minutes while their table block is dirty,
# and after a run before (a hundred thousand files removed) each new
# file's allocation walks past them. That made keyfs' rate vary 1.4x
# between back-to-back runs here.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KEYFS_BIN:-$ROOT/build/release/keyfs}
[ -x "$BIN" ] || { echo "recipient-bench: build $BIN first" >&2; exit 1; }
for tool in age age-keygen tar script mountpoint fusermount3 awk python3; do
	command -v "$tool" >/dev/null || { echo "recipient-bench: $tool is missing" >&2; exit 1; }
done
if [ "${QUICK:-0}" = 1 ]; then N=2000 NPW=4; else N=100000 NPW=8; fi
PW=Bench-Horse-9

TMP=$(mktemp -d "${TMPDIR:-/tmp}/recipient-bench.XXXXXX")
PID=
cleanup() {
	mountpoint -q "$TMP/mnt" 2>/dev/null && fusermount3 -u -z "$TMP/mnt" || true
	[ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; } || true
	rm -rf "$TMP"
}
trap cleanup EXIT

since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
per_s() { awk -v n="$1" -v t="$2" 'BEGIN { printf "%.0f", n / t }'; }

# N keysets of two small key files each, as a certificate store has.
make_store() {
	python3 - "$1" "$2" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    d = os.path.join(sys.argv[1], f"ks{i}")
    os.makedirs(d, mode=0o700)
    with open(os.path.join(d, "key.pem"), "wb") as f:
        f.write(os.urandom(64))
    with open(os.path.join(d, "id.txt"), "w") as f:
        f.write(f"id-{i}\n")
PY
}

# Cache files in place (temporaries are dot files, which ls leaves out).
cached() { ls -U "$1/cache" | wc -l; }
# Keysets sealed as the log says: a line per batch of seals, "sealed
# keyset NAME" or "sealed N keysets".
logged() {
	awk '/: sealed keyset "/ { n++ } /: sealed [0-9]+ keysets$/ { n += $(NF - 1) }
	     END { print n + 0 }' "$TMP/keyfs.log"
}

# Seconds from start until n cache files exist. $1 store, $2 n, $3 -o extra,
# $4 a command to run once mounted (giving the password).
cold_seal() {
	local store=$1 n=$2 opts=$3 then=$4 state="$TMP/state.$RANDOM" t0 secs cpu
	mkdir -m 700 "$state"
	mkdir -p "$TMP/mnt"
	t0=$EPOCHREALTIME
	"$BIN" -f -o "store=$store,state_dir=$state,$opts" "$TMP/mnt" 2>"$TMP/keyfs.log" &
	PID=$!
	until mountpoint -q "$TMP/mnt"; do sleep 0.01; done
	eval "$then"
	until [ "$(logged)" -ge "$n" ] && [ "$(cached "$state")" -ge "$n" ]; do
		sleep 0.1
	done
	secs=$(since "$t0")
	# the daemon's CPU (all its threads), which a busy neighbour on a
	# shared machine inflates less than it does the seconds
	cpu=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / hz }' \
		"/proc/$PID/stat")
	fusermount3 -u "$TMP/mnt"
	wait "$PID"
	PID=
	echo "$secs $cpu"
}

age-keygen -o "$TMP/key.txt" 2>/dev/null
grep -o 'age1.*' "$TMP/key.txt" > "$TMP/recipients.txt"
make_store "$TMP/store" "$N"
make_store "$TMP/pwstore" "$NPW"
# A store exists before its first mount: its own writeback is not the seal's.
sync

# The anchor: writing as many export-sized files (5 KB; a temporary
# renamed into place, one syncfs at the end) where the state lives. $1 a
# new directory.
write_files() {
	mkdir "$1"
	python3 - "$1" "$N" <<'PY'
import ctypes, os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
data = os.urandom(5120)
t0, c0 = time.monotonic(), os.times()
for i in range(n):
    tmp, dst = os.path.join(d, f".ks{i}.tmp"), os.path.join(d, f"ks{i}.pem")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, data)
    os.close(fd)
    os.rename(tmp, dst)
fd = os.open(d, os.O_RDONLY)
ctypes.CDLL(None, use_errno=True).syncfs(fd)
os.close(fd)
c1 = os.times()
print(f"{time.monotonic() - t0:.3f} {c1.user + c1.system - c0.user - c0.system:.3f}")
PY
}

echo "recipient-bench: $N keysets, $(nproc) cores" >&2
# Two rounds, keyfs and the anchor side by side in each: a shared
# machine's speed moves within minutes, and the ratio of each round is
# what compares. Nothing is deleted until the end (ext4, see above).
rounds=()
for r in 1 2; do
	out=$(cold_seal "$TMP/store" "$N" "recipients=$TMP/recipients.txt" :)
	read -r rcp rcp_cpu <<< "$out"
	out=$(write_files "$TMP/plain.$r")
	read -r files files_cpu <<< "$out"
	rounds+=("$rcp $rcp_cpu $files $files_cpu")
done
# The figures below are the round with the lower ratio (both are listed).
read -r rcp rcp_cpu files files_cpu < <(printf '%s\n' "${rounds[@]}" |
	awk '{ print $3 / $1, $0 }' | sort -n | head -1 | cut -d' ' -f2-)
out=$(cold_seal "$TMP/pwstore" "$NPW" "work_factor=18" \
	"printf 'password %s\n' '$PW' > '$TMP/mnt/.control'")
read -r pw _ <<< "$out"

# The stock tools, one keyset at a time, over the first NLOOP keysets.
NLOOP=$((N < 2000 ? N : 2000))
rcpt=$(cat "$TMP/recipients.txt")
t0=$EPOCHREALTIME
for ((i = 0; i < NLOOP; i++)); do
	tar -C "$TMP/store" -c "ks$i" | age -r "$rcpt" -a > "$TMP/out.pem"
done
loop=$(since "$t0")

printf '%-44s %10s %12s\n' "cold seal" "seconds" "keysets/s"
printf '%-44s %10s %12s\n' "keyfs, recipients ($N keysets)" "$rcp" "$(per_s "$N" "$rcp")"
printf '%-44s %10s %12s\n' "keyfs, passphrase at work factor 18 ($NPW)" "$pw" "$(per_s "$NPW" "$pw")"
printf '%-44s %10s %12s\n' "tar -c | age -r, one keyset at a time ($NLOOP)" "$loop" \
	"$(per_s "$NLOOP" "$loop")"
printf '%-44s %10s %12s\n' "writing $N files of 5 KB (temp + rename, syncfs)" "$files" \
	"$(per_s "$N" "$files")"
awk -v n="$N" -v rc="$rcp_cpu" -v fc="$files_cpu" 'BEGIN {
	printf "CPU per keyset: keyfs %.0f us (all threads), writing a file %.0f us " \
	       "(writeback by kernel threads counted for neither)\n", rc / n * 1e6, fc / n * 1e6
}'
printf '%s\n' "${rounds[@]}" | awk -v n="$N" '{
	printf "round %d: keyfs %.3f s (%.0f/s), files %.3f s (%.0f/s), %.2fx\n", NR, $1, n / $1, \
	       $3, n / $3, $3 / $1
}'
awk -v r="$rcp" -v f="$files" -v n="$N" -v p="$pw" -v np="$NPW" -v l="$loop" -v nl="$NLOOP" 'BEGIN {
	printf "ratios: recipients are %.0fx passphrase mode per keyset, %.1fx the age -r loop, " \
	       "%.2fx the rate of writing the files\n", (n / r) / (np / p), (n / r) / (nl / l), f / r
}'
