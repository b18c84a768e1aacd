#!/bin/bash
# Seal cost and export stability benchmark for keyfs (DESIGN.md section 2).
#
#   bench/seal-bench.sh            full run: 32 keysets, 10 000 for the RSS part
#   QUICK=1 bench/seal-bench.sh    8 keysets, 1 000 for the RSS part
#
# Builds nothing: it runs build/release/keyfs (or $KEYFS_BIN). Needs fuse3,
# age, openssl, tar, util-linux (script, mountpoint) and awk.
#
#  a) cold seal of N keysets at work factor 14 and 18: from writing the
#     password to .control until status shows "sealed N/N", against a loop of
#     `tar -c | age -p -a` over the same keysets (stock age always writes
#     work factor 18 for -p, so the ratio is for 18 only). A daemon whose
#     status has no "sealed N/M" progress seals on demand: then the time is
#     that of reading every export once, and the table says so.
#  b) warm `cp -r export/` against `cp -r` of the same bytes from a plain
#     directory, interleaved.
#  c) daemon VmRSS with many keysets (work factor 10): after mounting, after
#     `ls -l export/`, after reading every export.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${KEYFS_BIN:-$ROOT/build/release/keyfs}
if [ ! -x "$BIN" ]; then
	echo "seal-bench: $BIN is missing; build it first:" >&2
	echo "  cd $ROOT && meson setup build/release && ninja -C build/release" >&2
	exit 1
fi
for tool in age openssl tar script mountpoint fusermount3 awk; do
	command -v "$tool" >/dev/null || { echo "seal-bench: $tool is missing (scripts/deps installs it)" >&2; exit 1; }
done

if [ "${QUICK:-0}" = 1 ]; then
	N=8 BIG=1000 REPS=10
else
	N=32 BIG=10000 REPS=20
fi
PW=Bench-Horse-9
SEAL_TIMEOUT=${SEAL_TIMEOUT:-900}	# seconds to wait for "sealed N/N"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/seal-bench.XXXXXX")
PIDS=()
MNTS=()

cleanup() {
	local m p
	for m in "${MNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && fusermount3 -u -z "$m" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { echo "$EPOCHREALTIME"; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
since6() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f", b - a }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 == a && b > 0) printf "%.2f", a / b; else print "n/a" }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
log() { printf '%s\n' "$*" >&2; }

# make_keyset STORE NAME: a 32-byte key and an Ed25519 private key (PEM).
make_keyset() {
	mkdir -m 700 "$1/$2"
	head -c 32 /dev/urandom > "$1/$2/master.key"
	openssl genpkey -algorithm ed25519 -out "$1/$2/ed25519.key" 2>/dev/null
	chmod 600 "$1/$2/master.key" "$1/$2/ed25519.key"
}

# start_keyfs STORE MNT WORK_FACTOR: sets KPID once mounted.
start_keyfs() {
	local store=$1 mnt=$2 wf=$3 i
	mkdir -p "$mnt"
	"$BIN" -f -o "store=$store,work_factor=$wf" "$mnt" >>"$TMP/keyfs.log" 2>&1 </dev/null &
	KPID=$!
	PIDS+=("$KPID")
	MNTS+=("$mnt")
	for ((i = 0; i < 2000; i++)); do
		mountpoint -q "$mnt" && return 0
		kill -0 "$KPID" 2>/dev/null || { log "keyfs exited; log:"; cat "$TMP/keyfs.log" >&2; exit 1; }
		sleep 0.01
	done
	log "keyfs did not mount within 20 s"
	exit 1
}

stop_keyfs() {
	local mnt=$1 i
	for ((i = 0; i < 100; i++)); do
		fusermount3 -u "$mnt" 2>/dev/null && break
		sleep 0.05
	done
	wait "$KPID" 2>/dev/null || log "keyfs exited $?"
	local keep=() p
	for p in "${PIDS[@]}"; do [ "$p" = "$KPID" ] || keep+=("$p"); done
	PIDS=("${keep[@]}")
}

progress() { grep -oE 'sealed [0-9]+/[0-9]+' "$1/.control" | head -n1 || true; }

# seal_time MNT COUNT: sets the password, prints "SECONDS MODE" once every
# export is sealed. MODE is "background" when status reports progress,
# "on-demand" when the daemon has none and the exports had to be read.
seal_time() {
	local mnt=$1 count=$2 t0 p i
	t0=$(now)
	printf 'password %s\n' "$PW" > "$mnt/.control"
	for ((i = 0; i < 25; i++)); do		# the first progress report: 0.5 s at most
		p=$(progress "$mnt")
		[ -n "$p" ] && break
		sleep 0.02
	done
	if [ -z "$p" ]; then
		t0=$(now)
		cat "$mnt"/export/*.pem > /dev/null
		echo "$(since "$t0") on-demand"
		return
	fi
	while [ "$p" != "sealed $count/$count" ]; do
		if awk -v a="$t0" -v b="$EPOCHREALTIME" -v m="$SEAL_TIMEOUT" 'BEGIN { exit !(b - a > m) }'; then
			log "no \"sealed $count/$count\" within $SEAL_TIMEOUT s (last: $p)"
			echo "timeout background"
			return
		fi
		sleep 0.02
		p=$(progress "$mnt")
	done
	echo "$(since "$t0") background"
}

# age_loop STORE OUT COUNT: stock age over the same keysets, one at a time.
age_loop() {
	local store=$1 out=$2 t0 k
	mkdir -p "$out"
	t0=$(now)
	for k in $(ls "$store"); do
		printf '%s\n%s\n' "$PW" "$PW" |
			script -qec "tar -c -C '$store' '$k' | age -p -a -o '$out/$k.pem'" /dev/null >/dev/null
	done
	since "$t0"
	for k in $(ls "$store"); do
		[ -s "$out/$k.pem" ] || { log "age wrote no $out/$k.pem"; exit 1; }
	done
}

declare -A R	# results for the summary

echo "keyfs seal benchmark: $BIN"
echo "N=$N keysets, RSS part $BIG keysets, $REPS cp repetitions, $(nproc) CPUs$([ "${QUICK:-0}" = 1 ] && echo ', QUICK')"
echo

# ---- a) cold seal ------------------------------------------------------
echo "a) cold seal of $N keysets"
mkdir "$TMP/keys"
for ((i = 0; i < N; i++)); do make_keyset "$TMP/keys" "$(printf 'ks%03d' "$i")"; done
for wf in 14 18; do
	cp -a "$TMP/keys" "$TMP/store$wf"
	start_keyfs "$TMP/store$wf" "$TMP/mnt$wf" "$wf"
	read -r secs mode < <(seal_time "$TMP/mnt$wf" "$N")
	R[seal$wf]=$secs R[mode$wf]=$mode
	echo "   keyfs wf $wf: ${secs} s ($mode)"
	if [ "$wf" = 14 ]; then
		stop_keyfs "$TMP/mnt$wf"
	fi
done
R[age18]=$(age_loop "$TMP/keys" "$TMP/age-out")
echo "   age -p loop (wf 18): ${R[age18]} s"
# Cross-check: stock age opens what keyfs sealed.
first=$(ls "$TMP/keys" | head -n1)
if printf '%s\n' "$PW" | script -qec "age -d -o '$TMP/check.tar' '$TMP/mnt18/export/$first.pem'" /dev/null >/dev/null &&
	tar -tf "$TMP/check.tar" | grep -q "^$first/master.key$"; then
	echo "   age -d opens keyfs' $first.pem: yes"
else
	echo "   age -d opens keyfs' $first.pem: NO"
fi
echo

# ---- b) warm cp -r -----------------------------------------------------
echo "b) warm cp -r export/ ($N exports, work factor 18 mount), $REPS times each, interleaved"
MNT=$TMP/mnt18
cat "$MNT"/export/*.pem > /dev/null		# every export sealed
cp -r "$MNT/export" "$TMP/plain"
cp_keyfs=() cp_plain=()
for ((i = 0; i < REPS; i++)); do
	rm -rf "$TMP/dst"; t0=$(now); cp -r "$MNT/export" "$TMP/dst"; cp_keyfs+=("$(since6 "$t0")")
	rm -rf "$TMP/dst"; t0=$(now); cp -r "$TMP/plain" "$TMP/dst"; cp_plain+=("$(since6 "$t0")")
done
rm -rf "$TMP/dst"
stats() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1; s += $1 } END { printf "%.2f %.2f\n", 1000 * v[int((NR + 1) / 2)], 1000 * s / NR }'; }
read -r R[cpk_med] R[cpk_mean] < <(stats "${cp_keyfs[@]}")
read -r R[cpp_med] R[cpp_mean] < <(stats "${cp_plain[@]}")
R[cp_ratio]=$(ratio "${R[cpk_med]}" "${R[cpp_med]}")
echo "   keyfs: median ${R[cpk_med]} ms, mean ${R[cpk_mean]} ms"
echo "   plain: median ${R[cpp_med]} ms, mean ${R[cpp_mean]} ms"
if diff -r "$MNT/export" "$TMP/plain" >/dev/null; then
	echo "   bytes identical on every read: yes"
else
	echo "   bytes identical on every read: NO (exports changed between reads)"
fi
stop_keyfs "$MNT"
echo

# ---- c) RSS with many keysets ------------------------------------------
echo "c) daemon RSS with $BIG keysets (work factor 10)"
t0=$(now)
python3 - "$TMP/big" "$BIG" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root, 0o700)
for i in range(n):
    d = os.path.join(root, f"k{i:05d}")
    os.mkdir(d, 0o700)
    fd = os.open(os.path.join(d, "master.key"), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32))
    os.close(fd)
    fd = os.open(os.path.join(d, "key-id.txt"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, f"k{i:05d}-{os.urandom(4).hex()}\n".encode())
    os.close(fd)
EOF
echo "   created $BIG keysets in $(since "$t0") s"
MNT=$TMP/mntbig
start_keyfs "$TMP/big" "$MNT" 10
R[rss_mount]=$(rss_kib "$KPID")
t0=$(now); ls -l "$MNT/export" > "$TMP/ls.out"; R[t_ls]=$(since "$t0")
R[rss_ls]=$(rss_kib "$KPID")
R[ls_n]=$(grep -c '\.pem$' "$TMP/ls.out" || true)
t0=$(now)
printf 'password %s\n' "$PW" > "$MNT/.control"
(cd "$MNT/export" && find . -name '*.pem' -print0 | xargs -0 cat) > /dev/null
R[t_read]=$(since "$t0")
R[rss_read]=$(rss_kib "$KPID")
R[prog_big]=$(progress "$MNT")
echo "   after mount:              VmRSS $(mib "${R[rss_mount]}") MiB"
echo "   after ls -l export/:      VmRSS $(mib "${R[rss_ls]}") MiB (${R[t_ls]} s, ${R[ls_n]} .pem listed)"
echo "   after reading every .pem: VmRSS $(mib "${R[rss_read]}") MiB (${R[t_read]} s from setting the password)"
echo "   status progress: ${R[prog_big]:-(none reported)}"
if [ -d "$TMP/big/.keyfs/cache" ]; then
	echo "   on-disk cache: $(du -sh "$TMP/big/.keyfs/cache" | cut -f1)"
else
	echo "   on-disk cache: (none under <store>/.keyfs/cache)"
fi
stop_keyfs "$MNT"
echo

# ---- summary -----------------------------------------------------------
echo "Summary"
printf '  %-44s %12s %12s %8s\n' "measure" "keyfs" "baseline" "ratio"
printf '  %-44s %12s %12s %8s\n' "--------------------------------------------" "------------" "------------" "--------"
printf '  %-44s %12s %12s %8s\n' "cold seal $N keysets, wf 14 (s) [${R[mode14]}]" "${R[seal14]}" "-" "-"
printf '  %-44s %12s %12s %8s\n' "cold seal $N keysets, wf 18 (s) [${R[mode18]}]" "${R[seal18]}" "${R[age18]}" \
	"$(ratio "${R[seal18]}" "${R[age18]}")"
printf '  %-44s %12s %12s %8s\n' "  baseline: tar | age -p -a loop" "" "" ""
printf '  %-44s %12s %12s %8s\n' "warm cp -r export/, median (ms)" "${R[cpk_med]}" "${R[cpp_med]}" "${R[cp_ratio]}"
printf '  %-44s %12s %12s %8s\n' "warm cp -r export/, mean (ms)" "${R[cpk_mean]}" "${R[cpp_mean]}" \
	"$(ratio "${R[cpk_mean]}" "${R[cpp_mean]}")"
printf '  %-44s %12s %12s %8s\n' "  baseline: cp -r of a plain directory" "" "" ""
printf '  %-44s %12s\n' "VmRSS $BIG keysets, mounted (MiB)" "$(mib "${R[rss_mount]}")"
printf '  %-44s %12s\n' "VmRSS $BIG keysets, after ls -l (MiB)" "$(mib "${R[rss_ls]}")"
printf '  %-44s %12s\n' "VmRSS $BIG keysets, after reading all (MiB)" "$(mib "${R[rss_read]}")"
printf '  %-44s %12s\n' "ls -l export/, $BIG keysets (s)" "${R[t_ls]}"
printf '  %-44s %12s\n' "password + read all, $BIG keysets, wf 10 (s)" "${R[t_read]}"
