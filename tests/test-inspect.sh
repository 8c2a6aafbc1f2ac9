#!/bin/sh
# Unit test of ELF detection through `vmexec inspect`: real programs built with
# every installed cross compiler of the targets table (C and C++, static and
# dynamic), then crafted bad files, each of which must be refused with the
# status of env(1) and exactly one line on stderr.
# Needs VMEXEC and SRCDIR (set by tests/meson.build). Exits 1 on any failure.
set -u
: "${VMEXEC:?set VMEXEC to the vmexec binary}" "${SRCDIR:?set SRCDIR to the source tree}"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vmexec-inspect.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# shellcheck source=tests/testlib.sh
. "$(dirname "$0")/testlib.sh"

# check LABEL WANT GOT
check() {
  if [ "$2" = "$3" ]; then ok; else bad "$1: expected '$2', got '$3'"; fi
}

# Runs `vmexec inspect ARGS...`; leaves $status, $tmp/out and $tmp/err.
inspect() {
  "$VMEXEC" inspect "$@" >"$tmp/out" 2>"$tmp/err"
  status=$?
}

# The value of "KEY: value" in inspect's output.
field() { sed -n "s/^$1: //p" "$tmp/out"; }

# The dynamic loader of target NAME in common/targets.def (the first string
# of the row that is an absolute path).
table_loader() {
  awk -F'"' -v n="$1" '/^TARGET\(/ && $2 == n {
    for (i = 4; i <= NF; i++) if ($i ~ /^\//) { print $i; exit } }' "$SRCDIR/common/targets.def"
}

# ---------------------------------------------------------------- programs

cat >"$tmp/hello.c" <<'EOF'
#include <stdio.h>
int main(void) { puts("hello"); return 0; }
EOF
cat >"$tmp/hello.cc" <<'EOF'
#include <iostream>
int main() { std::cout << "hello\n"; return 0; }
EOF

# build OUT LOG COMPILER ARGS...: a failed build leaves no OUT, only LOG.
build() {
  out=$1 log=$2
  shift 2
  "$@" -o "$out" >"$log" 2>&1 || rm -f "$out"
}

# All variants for one row, in the background of the caller.
build_row() {
  name=$1 triplet=$2
  d="$tmp/$name"
  mkdir -p "$d"
  build "$d/c-static" "$d/c-static.log" "$triplet-gcc" -static "$tmp/hello.c"
  build "$d/c-dynamic" "$d/c-dynamic.log" "$triplet-gcc" "$tmp/hello.c"
  build "$d/c-static-pie" "$d/c-static-pie.log" "$triplet-gcc" -static-pie "$tmp/hello.c"
  if command -v "$triplet-g++" >/dev/null 2>&1; then
    build "$d/cxx-static" "$d/cxx-static.log" "$triplet-g++" -static "$tmp/hello.cc"
    build "$d/cxx-dynamic" "$d/cxx-dynamic.log" "$triplet-g++" "$tmp/hello.cc"
  fi
}

# check_program NAME FILE LINKING: inspect's lines against the table row and readelf.
check_program() {
  name=$1 f=$2 want_linking=$3
  what="$name $(basename "$f")"
  inspect "$f"
  if [ "$status" -ne 0 ] || [ -s "$tmp/err" ]; then
    bad "$what: inspect exited $status: $(cat "$tmp/err")"
    return
  fi
  check "$what target" "$name" "$(field target)"
  check "$what bits" "$(readelf -h "$f" | sed -n 's/^ *Class: *ELF//p')" "$(field bits)"
  if readelf -h "$f" | grep -q '^ *Data:.*big endian'; then order=big-endian; else order=little-endian; fi
  check "$what byte order" "$order" "$(field 'byte order')"
  check "$what linking" "$want_linking" "$(field linking)"
  interp=$(readelf -l "$f" | sed -n 's/.*Requesting program interpreter: \(.*\)]$/\1/p')
  check "$what interpreter (readelf -l)" "$interp" "$(field interpreter)"
  if [ "$want_linking" = dynamic ]; then
    check "$what interpreter (targets.def loader of $name)" "$(table_loader "$name")" "$interp"
  fi
}

"$VMEXEC" targets >"$tmp/targets" || bad "vmexec targets exited $?"
grep -v '^#' "$tmp/targets" | cut -f1,3 >"$tmp/rows"
names=$(cut -f1 "$tmp/rows")
[ -n "$names" ] || bad "vmexec targets lists no targets"

tab=$(printf '\t')
while IFS=$tab read -r name triplet; do
  if command -v "$triplet-gcc" >/dev/null 2>&1; then
    build_row "$name" "$triplet" &
  elif [ "$triplet" = s390x-linux-gnu ] && [ "${CI:-}" = true ]; then
    bad "$triplet-gcc is missing; CI needs it (scripts/install-deps installs gcc-s390x-linux-gnu)"
  else
    note "$triplet-gcc not installed: skipping $name"
  fi
done <"$tmp/rows"
wait

built=0
while IFS=$tab read -r name triplet; do
  [ -d "$tmp/$name" ] || continue
  built=$((built + 1))
  for v in c-static c-dynamic cxx-static cxx-dynamic; do
    case $v in cxx-*) command -v "$triplet-g++" >/dev/null 2>&1 || { note "no $triplet-g++: skipping $name $v"; continue; } ;; esac
    if [ ! -x "$tmp/$name/$v" ]; then
      bad "$name $v: $triplet build failed: $(head -n 3 "$tmp/$name/$v.log")"
      continue
    fi
    check_program "$name" "$tmp/$name/$v" "${v#*-}"
  done
  # static-pie is optional: not every toolchain ships rcrt1.o.
  if [ -x "$tmp/$name/c-static-pie" ]; then
    check_program "$name" "$tmp/$name/c-static-pie" static
  fi
done <"$tmp/rows"

if [ "$built" -eq 0 ] && [ "${CI:-}" != true ]; then
  echo "no cross compiler of the targets table is installed; skipping"
  exit 77
fi

# ---------------------------------------------------------------- refusals

# refused LABEL STATUS FILE [TEXT...]: the status, nothing on stdout, exactly
# one "vmexec: FILE: " line on stderr whose message (after the file name,
# which could contain TEXT itself) contains every TEXT.
refused() {
  label=$1 want=$2 f=$3
  shift 3
  inspect "$f"
  check "$label: status" "$want" "$status"
  [ -s "$tmp/out" ] && bad "$label: unexpected stdout: $(head -n 1 "$tmp/out")"
  lines=$(wc -l <"$tmp/err")
  if [ "$lines" -ne 1 ] || [ "$(tail -c 1 "$tmp/err" | od -An -c | tr -d ' ')" != '\n' ]; then
    bad "$label: stderr is not exactly one line: $(cat "$tmp/err")"
  fi
  msg=$(awk -v p="vmexec: $f: " 'index($0, p) == 1 { print substr($0, length(p) + 1) }' "$tmp/err")
  if [ -z "$msg" ]; then
    bad "$label: stderr does not start with 'vmexec: $f: ': $(cat "$tmp/err")"
    return
  fi
  for text in "$@"; do
    case $msg in
      *"$text"*) ok ;;
      *) bad "$label: message lacks '$text': $msg" ;;
    esac
  done
}

# patch FILE OFFSET OCTAL-ESCAPES: overwrite bytes in place.
patch() {
  # shellcheck disable=SC2059 # the escapes are the point
  printf "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc 2>/dev/null
}

# The byte at OFFSET of FILE, in decimal.
byte_at() { od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' '; }

# A little-endian ELF64 executable to corrupt: the host's x86_64 program.
base="$tmp/x86_64/c-dynamic"
if [ ! -x "$base" ]; then
  if [ "${CI:-}" = true ]; then bad "x86_64-linux-gnu-gcc is missing; the crafted-file checks need it"; fi
  note "no x86_64 program built: skipping the crafted ELF checks"
  base=
fi

refused "missing file" 127 "$tmp/does-not-exist" "No such file"
mkdir "$tmp/dir"
refused "directory" 126 "$tmp/dir" "directory"
printf 'hello\n' >"$tmp/text"
chmod +x "$tmp/text"
refused "text file" 126 "$tmp/text" "not an ELF"
: >"$tmp/empty"
chmod +x "$tmp/empty"
refused "empty file" 126 "$tmp/empty" "empty"
printf '#!/bin/sh\necho hi\n' >"$tmp/script"
chmod +x "$tmp/script"
refused "#! script" 126 "$tmp/script" "script" "/bin/sh" "ELF"
printf '#!/bin/sh\necho hi\n' >"$tmp/script-noexec"
chmod 0644 "$tmp/script-noexec"
refused "non-executable script" 126 "$tmp/script-noexec" "not executable"

if [ -n "$base" ]; then
  cp "$base" "$tmp/noexec"
  chmod 0644 "$tmp/noexec"
  refused "non-executable ELF (mode 0644, also for root)" 126 "$tmp/noexec" "not executable" "chmod +x"

  head -c 30 "$base" >"$tmp/truncated"
  chmod +x "$tmp/truncated"
  refused "truncated ELF (30 bytes)" 126 "$tmp/truncated" "truncated"

  cp "$base" "$tmp/bad-phoff"
  patch "$tmp/bad-phoff" 32 '\000\000\000\000\000\000\000\100'   # e_phoff = 2^62
  refused "e_phoff past EOF" 126 "$tmp/bad-phoff" "program headers"

  cp "$base" "$tmp/bad-version"
  patch "$tmp/bad-version" 6 '\000'                               # e_ident[EI_VERSION]
  refused "bad e_ident version" 126 "$tmp/bad-version" "corrupt"

  # Point p_offset of PT_INTERP (at 8 in an ELF64 program header of 56 bytes) far past EOF.
  cp "$base" "$tmp/bad-interp"
  phoff=$(od -An -tu8 -j 32 -N 8 "$base" | tr -d ' ')
  phnum=$(od -An -tu2 -j 56 -N 2 "$base" | tr -d ' ')
  i=0
  while [ "$i" -lt "$phnum" ] && [ "$(od -An -tu4 -j $((phoff + i * 56)) -N 4 "$base" | tr -d ' ')" != 3 ]; do
    i=$((i + 1))
  done
  if [ "$i" -lt "$phnum" ]; then
    patch "$tmp/bad-interp" $((phoff + i * 56 + 8)) '\000\000\000\000\000\000\001\000'
    refused "PT_INTERP past EOF" 126 "$tmp/bad-interp" "PT_INTERP"
  else
    bad "$base has no PT_INTERP"
  fi

  # unknown_machine E_MACHINE LE-BYTES WORDS: the message names the machine and every target.
  unknown_machine() {
    cp "$base" "$tmp/machine-$1"
    patch "$tmp/machine-$1" 18 "$2"                                 # e_machine
    # shellcheck disable=SC2086 # one TEXT per target name
    refused "e_machine $1" 126 "$tmp/machine-$1" "$3" $names
  }
  unknown_machine 43 '\053\000' "SPARC v9 64-bit little-endian"
  unknown_machine 92 '\134\000' "OpenRISC 64-bit little-endian"

  x86_64-linux-gnu-gcc -c -o "$tmp/hello.o" "$tmp/hello.c"
  chmod +x "$tmp/hello.o"
  refused "relocatable object" 126 "$tmp/hello.o" "relocatable"
  cp "$tmp/hello.o" "$tmp/core"
  patch "$tmp/core" 16 '\004\000'                                   # e_type = ET_CORE
  refused "core file" 126 "$tmp/core" "core"
  ar rc "$tmp/libhello.a" "$tmp/hello.o" && chmod +x "$tmp/libhello.a"
  refused "static library" 126 "$tmp/libhello.a" "archive"

  cp "$base" "$tmp/freebsd"
  patch "$tmp/freebsd" 7 '\011'                                     # EI_OSABI = FreeBSD
  refused "FreeBSD ELF" 126 "$tmp/freebsd" "FreeBSD"
fi

# armel: soft-float calling convention, which armhf's libraries cannot run.
if command -v arm-linux-gnueabi-gcc >/dev/null 2>&1; then
  arm-linux-gnueabi-gcc -o "$tmp/armel" "$tmp/hello.c" || bad "arm-linux-gnueabi-gcc failed"
  refused "armel program" 126 "$tmp/armel" "soft-float" "armel"
elif [ -x "$tmp/armhf/c-dynamic" ]; then
  cp "$tmp/armhf/c-dynamic" "$tmp/armel"
  b=$(byte_at "$tmp/armel" 37)                                      # e_flags bits 8-15
  patch "$tmp/armel" 37 "\\$(printf '%o' $(((b & ~4) | 2)))"        # hard-float 0x400 -> soft 0x200
  refused "armel program (crafted e_flags)" 126 "$tmp/armel" "soft-float" "armel"
  cp "$tmp/armhf/c-dynamic" "$tmp/arm-eabi4"
  patch "$tmp/arm-eabi4" 39 '\004'                                  # EF_ARM_EABI_VER4
  refused "ARM EABI 4 program" 126 "$tmp/arm-eabi4" "EABI"
else
  note "no armhf or armel compiler: skipping the armel check"
fi

# The ABI within one machine, byte order and class: a mips n32 program (o32
# libraries cannot run it) and a ppc64 ELFv2 one (Debian's ppc64 is ELFv1).
if [ -x "$tmp/mips/c-static" ]; then
  cp "$tmp/mips/c-static" "$tmp/mips-n32"
  b=$(byte_at "$tmp/mips-n32" 39)                                   # e_flags bits 0-7 (big-endian)
  patch "$tmp/mips-n32" 39 "\\$(printf '%o' $((b | 32)))"           # EF_MIPS_ABI2: n32
  refused "mips n32 program (crafted e_flags)" 126 "$tmp/mips-n32" "mips"
else
  note "no mips program: skipping the n32 check"
fi
if [ -x "$tmp/ppc64/c-static" ]; then
  cp "$tmp/ppc64/c-static" "$tmp/ppc64-elfv2"
  b=$(byte_at "$tmp/ppc64-elfv2" 51)                                # e_flags bits 0-7 (ELF64, big-endian)
  patch "$tmp/ppc64-elfv2" 51 "\\$(printf '%o' $(((b & ~3) | 2)))"  # ELFv2
  refused "ppc64 ELFv2 program (crafted e_flags)" 126 "$tmp/ppc64-elfv2" "ppc64"
  check "ppc64 ELFv1 program" ppc64 "$("$VMEXEC" inspect "$tmp/ppc64/c-static" | sed -n 's/^target: //p')"
else
  note "no ppc64 program: skipping the ELFv2 check"
fi
# riscv64: Debian's libraries use the lp64d ABI (floats in FP registers); an
# lp64 (soft-float) program cannot call them.
if [ -x "$tmp/riscv64/c-static" ]; then
  cp "$tmp/riscv64/c-static" "$tmp/riscv64-lp64"
  b=$(byte_at "$tmp/riscv64-lp64" 48)                               # e_flags bits 0-7 (ELF64, little-endian)
  patch "$tmp/riscv64-lp64" 48 "\\$(printf '%o' $((b & ~6)))"        # EF_RISCV_FLOAT_ABI_SOFT
  refused "riscv64 lp64 soft-float program (crafted e_flags)" 126 "$tmp/riscv64-lp64" "riscv64" "0x4 under mask 0x6"
else
  note "no riscv64 program: skipping the soft-float check"
fi

# ---------------------------------------------------------------- command line

inspect
check "no argument: status" 125 "$status"
check "no argument: one line of usage" 1 "$(grep -c 'usage: vmexec inspect' "$tmp/err")"
inspect a b
check "two arguments: status" 125 "$status"
check "two arguments: one line on stderr" 1 "$(wc -l <"$tmp/err")"
inspect --bogus
check "unknown option: status" 125 "$status"
inspect --help
check "--help: status" 0 "$status"
grep -q '^Usage: vmexec inspect' "$tmp/out" || bad "--help: no usage on stdout"
if [ -n "$base" ]; then
  inspect -- "$base"
  check "-- FILE: status" 0 "$status"
fi

echo "$passed checks passed, $failed failed"
[ "$failed" -eq 0 ]
