#!/bin/sh
# vmexec image build/list/rm for s390x: a first build, a second one that is
# instant and gives the same key, the contents of the initramfs, and removal.
#
# The images go to a private cache, so that 'image rm' cannot disturb other
# guest tests running at the same time; the package lists and the .deb cache
# are links into the shared test cache, so the ~100 MB of packages are
# downloaded once per build tree, not once per run.
set -eu

: "${VMEXEC:?}" "${BUILDDIR:?}"
shared=${XDG_CACHE_HOME:-$BUILDDIR/test-cache}/vmexec

skip() { echo "SKIP: $*"; exit 77; }
die() { echo "FAIL: $*" >&2; exit 1; }

[ -x "$BUILDDIR/agent/vmexec-agent-s390x" ] || skip "no s390x agent (install gcc-s390x-linux-gnu)"
command -v apt-get >/dev/null || skip "no apt-get"
command -v cpio >/dev/null || skip "no cpio"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$shared/apt" "$shared/debs" "$tmp/vmexec/images"
ln -s "$shared/apt" "$tmp/vmexec/apt"
ln -s "$shared/debs" "$tmp/vmexec/debs"

# s390x's kernel is built from linux-source (targets.def), minutes of
# compiling: it is built once, in the shared cache (where the other guest
# tests need it too), and its cache entry hard-linked into the private one.
XDG_CACHE_HOME=$(dirname "$shared") "$VMEXEC" image build s390x 2>"$tmp/err0" ||
  { cat "$tmp/err0" >&2; die "the build in the shared cache failed"; }
if kernel=$(readlink "$shared/images/s390x-kernel"); then
  cp -al "$shared/images/$kernel" "$tmp/vmexec/images/$kernel"
fi
export XDG_CACHE_HOME="$tmp"

ms() { date +%s%3N; }

# -- first build -------------------------------------------------------------
t0=$(ms)
"$VMEXEC" image build s390x 2>"$tmp/err1" || { cat "$tmp/err1" >&2; die "first build failed"; }
t1=$(ms)
cat "$tmp/err1"
dir=$(sed -n 's/^vmexec: \[s390x\] done in .*: //p' "$tmp/err1" | tail -n 1)
[ -n "$dir" ] && [ -d "$dir" ] || die "no image directory in: $(cat "$tmp/err1")"
key=$(basename "$dir")
echo "first build: $((t1 - t0)) ms, key $key"
for f in kernel initrd manifest; do
  [ -s "$dir/$f" ] || die "image has no $f"
done
grep -qx "target s390x" "$dir/manifest" || die "manifest lacks the target"
grep -qx "key $key" "$dir/manifest" || die "manifest lacks the key"

# -- list ----------------------------------------------------------------------
"$VMEXEC" image list >"$tmp/list"
cat "$tmp/list"
grep -q "^\* s390x .* $key" "$tmp/list" || die "image list does not show $key as current"

# -- second build: from the cache, no extraction --------------------------------
t0=$(ms)
"$VMEXEC" image build s390x 2>"$tmp/err2" || { cat "$tmp/err2" >&2; die "second build failed"; }
t1=$(ms)
cat "$tmp/err2"
grep -q "(cached): $dir\$" "$tmp/err2" || die "second build did not reuse $dir"
echo "second build: $((t1 - t0)) ms"
[ $((t1 - t0)) -lt 2000 ] || die "second build took $((t1 - t0)) ms"

# -- the initramfs ---------------------------------------------------------------
cpio -itv --quiet <"$dir/initrd" >"$tmp/cpio" || die "initrd is no cpio archive"
awk '{ print $NF }' "$tmp/cpio" >"$tmp/names"
for p in init dev/console etc/vmexec/modules etc/vmexec/image bin/busybox; do
  grep -qx "$p" "$tmp/names" || die "initrd lacks /$p"
done
grep -q '^crw.* 5, *1 .* dev/console$' "$tmp/cpio" || die "/dev/console is not char 5,1"
awk '$3 != "root" || $4 != "root" { bad = 1 } END { exit bad }' "$tmp/cpio" || die "initrd has entries not owned by root"
grep -q '^-rwxr-xr-x .* init$' "$tmp/cpio" || die "/init is not mode 0755"
(cd "$tmp" && cpio -i --quiet --to-stdout etc/vmexec/modules <"$dir/initrd" >"$tmp/modules")
if kernel_key=$(sed -n 's/^kernel-key //p' "$dir/manifest") && [ -n "$kernel_key" ]; then
  # A kernel built from linux-source: everything built in, no modules; the
  # kernel is a cache entry of its own, which the manifest names.
  [ ! -s "$tmp/modules" ] || die "the kernel is built from source, yet modules are listed"
  grep -qx "kind kernel" "$tmp/vmexec/images/$kernel_key/manifest" || die "no kernel entry $kernel_key"
  [ -s "$tmp/vmexec/images/$kernel_key/kernel" ] || die "the kernel entry $kernel_key has no kernel"
else
  [ -s "$tmp/modules" ] || die "empty module list"
  while read -r m; do
    grep -qx "${m#/}" "$tmp/names" || die "listed module $m is not in the initrd"
  done <"$tmp/modules"
  for m in virtio_console virtio_blk loop overlay erofs ext4; do
    grep -q "/$m\.ko\$" "$tmp/modules" || die "module $m is not in the list"
  done
fi

# -- a changed kernel patch: the next call builds a new kernel ---------------------
# The image keeps the kernel key it was built with; the kernel's inputs (config
# fragments, patch) are part of the image's key, so that a call sees a changed
# patch without asking apt or the compiler. Stopped as soon as it says so: the
# build takes minutes. A private runtime directory, so that no running guest
# of another test answers the call.
if [ -n "${kernel_key:-}" ]; then
  mkdir "$tmp/kc" "$tmp/rt"
  chmod 700 "$tmp/rt"
  cp "$SRCDIR"/image/kernel-configs/* "$tmp/kc/"
  { echo "vmexec test: a changed patch"; cat "$SRCDIR/image/kernel-configs/s390x.patch"; } >"$tmp/kc/s390x.patch"
  VMEXEC_KERNEL_CONFIG_DIR="$tmp/kc" XDG_RUNTIME_DIR="$tmp/rt" setsid "$VMEXEC" --target s390x -- true 2>"$tmp/err5" &
  pid=$!
  i=0
  while kill -0 "$pid" 2>/dev/null && ! grep -q "building the guest kernel" "$tmp/err5" && [ $i -lt 600 ]; do
    sleep 0.2
    i=$((i + 1))
  done
  kill -TERM "-$pid" 2>/dev/null || true # dash: no "--"
  wait "$pid" 2>/dev/null || true
  grep -q "building the guest kernel" "$tmp/err5" ||
    die "a call did not see the changed kernel patch: $(cat "$tmp/err5")"
  XDG_RUNTIME_DIR="$tmp/rt" "$VMEXEC" stop --all >/dev/null 2>&1 || true
fi

# -- errors ------------------------------------------------------------------------
if "$VMEXEC" image build no-such-target 2>"$tmp/err3"; then die "unknown target accepted"; else st=$?; fi
[ "$st" -eq 125 ] || die "unknown target: status $st, not 125"
grep -q "s390x" "$tmp/err3" || die "unknown target: the message does not list the targets"

# -- rm ------------------------------------------------------------------------------
"$VMEXEC" image rm s390x
[ ! -e "$dir" ] || die "image rm left $dir"
"$VMEXEC" image list >"$tmp/list2" 2>/dev/null
! grep -q "$key" "$tmp/list2" || die "image list still shows $key"
[ -n "$(ls "$shared/debs")" ] || die "image rm removed the package cache"
echo "ok"
