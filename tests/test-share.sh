#!/bin/sh
# The vmexec-share nbdkit plugin, end to end on the host: the real nbdkit
# loads the plugin, a libnbd client (test-share-read) reads generations out of
# the export, fsck.erofs checks them and its extraction is compared with the
# host tree; when this machine lets us, the kernel mounts them too.
#
# Trees: 100 000 files in all, a 200-level deep chain, a path longer than
# PATH_MAX, 10 000 entries in one directory, 255-byte and non-UTF-8 names,
# hard links, dangling and looping symlinks, empty, sparse and 5 GiB sparse
# files, a fifo (left out); then files changing between two generations.
#
# Needs SHARE_PLUGIN, SHARE_READ, SHARE_SYNTH (set by tests/meson.build).
set -u
: "${SHARE_PLUGIN:?}" "${SHARE_READ:?}" "${SHARE_SYNTH:?}"

for tool in nbdkit fsck.erofs; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not installed"; exit 77; }
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmexec-share.XXXXXX") || exit 1
nbdkit_pid=""
mnt="$tmp/mnt"
loopdev=""
cleanup() {
  mountpoint -q "$mnt" 2>/dev/null && umount "$mnt"
  [ -n "$loopdev" ] && losetup -d "$loopdev"
  mountpoint -q "$tmp/fuse" 2>/dev/null && umount "$tmp/fuse"
  [ -n "$nbdkit_pid" ] && kill "$nbdkit_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# shellcheck source=tests/testlib.sh
. "$(dirname "$0")/testlib.sh"
elapsed() { awk "BEGIN { printf \"%.2f\", $t1 - $t0 }"; }
check() { if [ "$2" = "$3" ]; then ok; else bad "$1: expected '$2', got '$3'"; fi; }

src="$tmp/src"
ctl="$tmp/control"
sock="$tmp/nbd.sock"
mkdir -p "$src" "$ctl" "$mnt"

# ------------------------------------------------------------------ trees

mkdir "$src/many"
t0=$(date +%s.%N)
i=0
while [ $i -lt 90 ]; do
  mkdir "$src/many/d$i"
  (cd "$src/many/d$i" && seq 1 1000 | sed 's/^/file-/' | xargs touch && echo "content of $i" >file-1)
  i=$((i + 1))
done
mkdir "$src/wide"
(cd "$src/wide" && seq 1 10000 | sed 's/^/entry-with-a-longer-name-/' | xargs touch)
echo "wide data" >"$src/wide/entry-with-a-longer-name-5000"

# 200 levels deep
deep="$src/deep"
mkdir "$deep"
(cd "$deep" && i=0 && while [ $i -lt 200 ]; do mkdir d && cd d || exit 1; i=$((i + 1)); done && echo bottom >file)
# deeper than PATH_MAX in bytes: 20 levels of 250-byte names, in a root of
# its own (fsck.erofs 1.5 overflows a PATH_MAX buffer extracting it)
long=$(printf '%0250d' 0)
longroot="$tmp/longpath"
mkdir "$longroot"
(cd "$longroot" && i=0 && while [ $i -lt 20 ]; do mkdir "$long" && cd -P "$long" || exit 1; i=$((i + 1)); done &&
  echo "beyond PATH_MAX" >file)

mkdir "$src/names"
echo 255 >"$src/names/$(printf '%0255d' 7)"
echo latin1 >"$src/names/$(printf 'caf\351-\377\376')"
echo spaces >"$src/names/with spaces and \\ backslash"
echo dash >"$src/names/-"

mkdir "$src/links"
echo shared >"$src/links/target"
ln "$src/links/target" "$src/links/hard1"
ln "$src/links/target" "$src/names/hard2"
ln -s nowhere/at/all "$src/links/dangling"
ln -s loop-b "$src/links/loop-a"
ln -s loop-a "$src/links/loop-b"
ln -s ../names "$src/links/dir-link"
mkfifo "$src/links/fifo"

mkdir "$src/files"
: >"$src/files/empty"
printf 'head' >"$src/files/sparse"
truncate -s 30M "$src/files/sparse"
printf 'tail' >>"$src/files/sparse"
truncate -s 5G "$src/files/huge"
printf 'end of 5 GiB' | dd of="$src/files/huge" bs=1 seek=$((5 * 1024 * 1024 * 1024 - 12)) conv=notrunc 2>/dev/null
echo "same size v1" >"$src/files/inplace"
echo "will shrink, a long line of text" >"$src/files/shrinks"
echo "will be deleted" >"$src/files/deleted"
echo "renamed over v1" >"$src/files/renamed"
chmod 4755 "$src/files/inplace"
touch -d '1999-12-31 23:59:59.123456789' "$src/files/empty"
t1=$(date +%s.%N)
total=$(find "$src" | wc -l)
note "created $total entries in $(elapsed) s"
[ "$total" -ge 100000 ] && ok || bad "only $total entries"

# ------------------------------------------------------------------ nbdkit

# An ASan build of the plugin needs the sanitizer runtime loaded first.
preload=""
if ldd "$SHARE_PLUGIN" 2>/dev/null | grep -q libasan; then
  preload=$(${CC:-cc} -print-file-name=libasan.so)
  export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
fi

# start_nbdkit LOG ARGS...: nbdkit in the foreground of a background job;
# --exit-with-parent ties it to this script.
start_nbdkit() {
  log=$1
  shift
  rm -f "$sock"
  LD_PRELOAD="$preload" nbdkit -f -v -U "$sock" --exit-with-parent "$SHARE_PLUGIN" "$@" 2>"$log" &
  nbdkit_pid=$!
  i=0
  while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -S "$sock" ] || { bad "nbdkit did not start: $(tail -3 "$log")"; exit 1; }
}
# stop_nbdkit LOG: also fails the test on a sanitizer report in LOG. Under
# an ASan preload nbdkit can deadlock in a library destructor at exit
# (p11-kit's freelocale), so it gets a few seconds, then SIGKILL.
stop_nbdkit() {
  kill "$nbdkit_pid" 2>/dev/null
  i=0
  while kill -0 "$nbdkit_pid" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$nbdkit_pid" 2>/dev/null
  wait "$nbdkit_pid" 2>/dev/null
  nbdkit_pid=""
  if grep -E "ERROR: AddressSanitizer|runtime error:|LeakSanitizer" "$1" >/dev/null; then
    bad "sanitizer report in $1: $(grep -E -m1 "ERROR: AddressSanitizer|runtime error:" "$1")"
  else
    ok
  fi
}

# request N ROOTS...: the supervisor's side: gen-N.roots, written atomically.
request() {
  n=$1
  shift
  printf '%s\n' "$@" >"$ctl/.gen-$n.tmp" && mv "$ctl/.gen-$n.tmp" "$ctl/gen-$n.roots"
}

slot=$((256 * 1024 * 1024 * 1024))
start_nbdkit "$tmp/nbdkit.log" control="$ctl"
check "export size" $((16 * 1024 * 1024 * 1024 * 1024)) "$("$SHARE_READ" "$sock" size)"

# nothing requested: zeroes
"$SHARE_READ" "$sock" zero 0 1048576 && ok || bad "slot 0 before any request is not zero"

# ------------------------------------------------------------------ generation 0

request 0 "$src" "/usr/include/nbdkit-plugin.h"
t0=$(date +%s.%N)
out=$("$SHARE_READ" "$sock" image 0 "$tmp/gen0.img") || bad "no image in slot 0"
t1=$(date +%s.%N)
note "generation 0: $out (bytes, block bits); first read and copy $(elapsed) s"
note "generation 0: $(tr '\n' ' ' <"$ctl/gen-0.info")"
grep -q "left out" "$tmp/nbdkit.log" && ok || bad "the fifo was not logged as left out"

fsck.erofs "$tmp/gen0.img" >"$tmp/fsck0.log" 2>&1 && ok || bad "fsck.erofs gen 0: $(tail -3 "$tmp/fsck0.log")"
t0=$(date +%s.%N)
fsck.erofs --extract="$tmp/x0" --preserve "$tmp/gen0.img" >"$tmp/extract0.log" 2>&1 ||
  bad "fsck.erofs --extract gen 0: $(tail -3 "$tmp/extract0.log")"
t1=$(date +%s.%N)
note "fsck.erofs --extract of generation 0: $(elapsed) s"

# Compare everything fsck.erofs 1.5 extracts faithfully: it drops the holes of
# chunk-based files (sparse, huge) and clears setuid by chowning after chmod;
# those are checked on a mount below.
listing() {
  (cd "$1" && find . \( -name sparse -o -name huge -o -name inplace -o -type p \) -prune -o \
    -printf '%y %m %U %G %s %T@ %l %P\n' | sed 's/^d \([0-9]*\) \([0-9]*\) \([0-9]*\) [0-9]*/d \1 \2 \3 -/' |
    LC_ALL=C sort)
}
listing "$src" >"$tmp/host.list"
listing "$tmp/x0$src" >"$tmp/image.list"
cmp -s "$tmp/host.list" "$tmp/image.list" && ok || bad "generation 0 differs from the host: $(diff "$tmp/host.list" "$tmp/image.list" | head -5)"
diff -r --no-dereference -x sparse -x huge -x fifo "$src" "$tmp/x0$src" >"$tmp/diff0.log" 2>&1 &&
  ok || bad "generation 0 contents differ: $(head -5 "$tmp/diff0.log")"
cmp -s /usr/include/nbdkit-plugin.h "$tmp/x0/usr/include/nbdkit-plugin.h" && ok || bad "file root differs"
check "synthesised /usr mode" "755 0" "$(stat -c '%a %u' "$tmp/x0/usr")"

# The kernel's view: mount the copied image, when this machine allows it.
can_mount=no
if [ "$(id -u)" = 0 ] && mount -t erofs -o ro,loop "$tmp/gen0.img" "$mnt" 2>/dev/null; then
  can_mount=yes
  m="$mnt$src"
  check "hard links share an inode" "$(stat -c %i "$m/links/target")" "$(stat -c %i "$m/names/hard2")"
  check "hard link count" 3 "$(stat -c %h "$m/links/hard1")"
  check "looping symlink" loop-b "$(readlink "$m/links/loop-a")"
  check "dangling symlink" nowhere/at/all "$(readlink "$m/links/dangling")"
  cmp -s "$src/files/sparse" "$m/files/sparse" && ok || bad "sparse file differs on the mount"
  check "5 GiB file size" 5368709120 "$(stat -c %s "$m/files/huge")"
  check "5 GiB file tail" "end of 5 GiB" "$(tail -c 12 "$m/files/huge")"
  check "5 GiB file middle" 0 "$(dd if="$m/files/huge" bs=1M skip=2500 count=1 2>/dev/null | tr -d '\0' | wc -c)"
  check "setuid kept" 4755 "$(stat -c %a "$m/files/inplace")"
  check "200 levels" bottom "$(cat "$m/deep$(printf '/d%.0s' $(seq 200))/file")"
  check "entries on the mount" "$(find "$src" ! -type p | wc -l)" "$(find "$m" | wc -l)"
  diff -r --no-dereference -x huge -x fifo "$src" "$m" >"$tmp/diffm.log" 2>&1 && ok ||
    bad "mounted generation 0 differs: $(head -5 "$tmp/diffm.log")"
  umount "$mnt"
else
  note "cannot mount EROFS here (not root, or no erofs in this kernel): kernel checks skipped"
fi

# ------------------------------------------------------------------ generation 1

# The host changes; the supervisor's fingerprint sees it and asks for gen 1.
fp0=$("$SHARE_SYNTH" --fingerprint "$src" | cut -d' ' -f1)
echo "same size v2" >"$src/files/inplace"                # rewritten in place, same size
echo "shrunk" >"$src/files/shrinks"
rm "$src/files/deleted"
echo "renamed over v2, longer" >"$src/files/renamed.new" && mv "$src/files/renamed.new" "$src/files/renamed"
echo new >"$src/files/added"
fp1=$("$SHARE_SYNTH" --fingerprint "$src" | cut -d' ' -f1)
[ "$fp0" != "$fp1" ] && ok || bad "fingerprint did not change"

request 1 "$src"
"$SHARE_READ" "$sock" image $slot "$tmp/gen1.img" >/dev/null || bad "no image in slot 1"
fsck.erofs --extract="$tmp/x1" "$tmp/gen1.img" >"$tmp/extract1.log" 2>&1 || bad "fsck.erofs gen 1: $(tail -3 "$tmp/extract1.log")"
f1="$tmp/x1$src/files"
check "gen 1 in-place" "same size v2" "$(cat "$f1/inplace")"
check "gen 1 shrunk" shrunk "$(cat "$f1/shrinks")"
check "gen 1 renamed" "renamed over v2, longer" "$(cat "$f1/renamed")"
check "gen 1 added" new "$(cat "$f1/added")"
[ ! -e "$f1/deleted" ] && ok || bad "gen 1 still has the deleted file"

# Generation 0 never changes its metadata: old names and sizes. Its file data
# is read from the host at read time: a file rewritten in place shows the new
# bytes, a shrunk file reads as zeroes past the new end (documented limits).
"$SHARE_READ" "$sock" image 0 "$tmp/gen0b.img" >/dev/null || bad "slot 0 gone"
fsck.erofs --extract="$tmp/x0b" "$tmp/gen0b.img" >"$tmp/extract0b.log" 2>&1 || bad "fsck.erofs gen 0 again"
f0="$tmp/x0b$src/files"
[ -e "$f0/deleted" ] && ok || bad "gen 0 lost a file"
[ ! -e "$f0/added" ] && ok || bad "gen 0 gained a file"
check "gen 0 keeps the old size" 33 "$(stat -c %s "$f0/shrinks")"
check "gen 0 shrunk file" "shrunk" "$(head -c 6 "$f0/shrinks")"
check "gen 0 past the new end" 0 "$(tail -c 26 "$f0/shrinks" | tr -d '\0' | wc -c)"
check "gen 0 renamed keeps its size" 16 "$(stat -c %s "$f0/renamed")"
check "gen 0 in place (limit: new bytes)" "same size v2" "$(cat "$f0/inplace")"

# The guest's way, when FUSE is here: the live export as a file (nbdfuse),
# a read-only loop device at generation 1's offset, the kernel mounts it.
if [ $can_mount = yes ] && command -v nbdfuse >/dev/null && [ -c /dev/fuse ]; then
  mkdir "$tmp/fuse"
  nbdfuse "$tmp/fuse/disk" --unix "$sock" &
  fuse_pid=$!
  i=0
  while [ ! -e "$tmp/fuse/disk" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
  loopdev=$(losetup -r -o $slot --sizelimit $slot --direct-io=on -f --show "$tmp/fuse/disk") &&
    mount -t erofs -o ro "$loopdev" "$mnt" && ok || bad "mounting slot 1 of the live export"
  check "live gen 1 added" new "$(cat "$mnt$src/files/added" 2>&1)"
  diff -r --no-dereference "$src/names" "$mnt$src/names" >/dev/null 2>&1 && ok || bad "live gen 1 names differ"
  check "live gen 1 entries" "$(find "$src" ! -type p | wc -l)" "$(find "$mnt$src" | wc -l)"
  umount "$mnt"
  losetup -d "$loopdev"
  loopdev=""
  umount "$tmp/fuse"
  wait $fuse_pid
else
  note "no nbdfuse or /dev/fuse: the live-export mount is skipped"
fi

# ------------------------------------------------------------------ concurrency, retiring

# Two new generations first read at the same time by two clients.
request 2 "$src/names" "$src/links" "$longroot"
request 3 "$src/wide"
"$SHARE_READ" "$sock" image $((2 * slot)) "$tmp/gen2.img" >/dev/null &
p2=$!
"$SHARE_READ" "$sock" image $((3 * slot)) "$tmp/gen3.img" >/dev/null &
p3=$!
wait $p2 && ok || bad "concurrent read of slot 2"
wait $p3 && ok || bad "concurrent read of slot 3"
fsck.erofs "$tmp/gen2.img" >/dev/null 2>&1 && ok || bad "fsck.erofs gen 2"
if [ $can_mount = yes ] && mount -t erofs -o ro,loop "$tmp/gen2.img" "$mnt"; then
  check "path beyond PATH_MAX" "beyond PATH_MAX" \
    "$(cd -P "$mnt$longroot" && for i in $(seq 20); do cd -P "$long" || exit; done && cat file)"
  check "gen 2 roots only" "links names" "$(ls "$mnt$src" | tr '\n' ' ' | sed 's/ $//')"
  umount "$mnt"
fi
fsck.erofs "$tmp/gen3.img" >/dev/null 2>&1 && ok || bad "fsck.erofs gen 3"

# A request that cannot be built: an error file, zeroes.
request 4 "relative/root"
"$SHARE_READ" "$sock" zero $((4 * slot)) 4096 && ok || bad "slot 4 (bad request) not zero"
[ -s "$ctl/gen-4.error" ] && ok || bad "no gen-4.error"
"$SHARE_READ" "$sock" zero $((63 * slot)) 1048576 && ok || bad "last slot not zero"

# The lazy image of / (what vmexec asks for): made on the first read, with no
# scan; gen-N.ask is answered by the plugin's watcher thread: fresh while
# nothing it read changed, stale for a failed generation.
ask() {
  : >"$ctl/gen-$1.ask"
  i=0
  while [ -e "$ctl/gen-$1.ask" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
  [ ! -e "$ctl/gen-$1.ask" ] || { echo "gen-$1.ask not answered"; return 2; }
  [ -e "$ctl/gen-$1.stale" ]
}
request 6 /
"$SHARE_READ" "$sock" zero $((6 * slot)) 4096 && bad "the lazy slot 6 reads as zeroes" || ok
grep -q "^lazy=1" "$ctl/gen-6.info" && ok || bad "no lazy=1 in gen-6.info"
ask 6; check "the lazy generation, unchanged, is fresh" 1 $?
ask 4; check "a failed generation is stale" 0 $?

# Retiring: the memory goes (about a second later, at the next read).
: >"$ctl/gen-0.retired"
sleep 1.2
"$SHARE_READ" "$sock" zero $((5 * slot)) 4096 >/dev/null
"$SHARE_READ" "$sock" zero 0 1048576 && ok || bad "retired slot 0 still served"
grep -q "generation 0 retired" "$tmp/nbdkit.log" && ok || bad "retirement not logged"
"$SHARE_READ" "$sock" image $slot "$tmp/gen1b.img" >/dev/null && ok || bad "slot 1 lost when 0 retired"
stop_nbdkit "$tmp/nbdkit.log"

# ------------------------------------------------------------------ 64 KiB blocks (ppc64el pages)

rm -f "$ctl"/gen-*
start_nbdkit "$tmp/nbdkit64.log" control="$ctl" blocksize=64K size=1T slot=64G
request 0 "$src/links" "$src/files"
out=$("$SHARE_READ" "$sock" image 0 "$tmp/gen64.img") || bad "no 64K image"
check "64 KiB blocks" 16 "${out#* }"
stop_nbdkit "$tmp/nbdkit64.log"

# ------------------------------------------------------------------ timings (100 000 files)

for run in 1 2; do
  note "fingerprint of $total entries: $("$SHARE_SYNTH" --fingerprint "$src" | cut -d' ' -f2) ms (run $run)"
done

echo "test-share: $passed passed, $failed failed"
[ "$failed" = 0 ]
