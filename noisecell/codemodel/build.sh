#!/usr/bin/env bash
# Build noisecell's XSPICE code model (nc_chan) against the INSTALLED ngspice.
#
#   noisecell/codemodel/build.sh BUILD_DIR        -> BUILD_DIR/noisecell-<ngspice version>.cm
#
# Why this way: a code model needs ngspice's `cmpp` preprocessor and XSPICE headers, which Debian's
# binary packages do not ship; Debian's ngspice SOURCE package (same version as the installed
# binary, so the device-table ABI matches) has both. The source is fetched with apt through a
# private apt state under BUILD_DIR (deb-src twins of the system's own deb entries), so the system's
# sources.list is never modified. Idempotent and quick when nothing changed (a cached .cm for the
# installed version is kept). Any failure exits non-zero with one line; noisecell then uses the
# portable route (same results, slower).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$(mkdir -p "$1" && cd "$1" && pwd)"
say() { echo "codemodel: $*" >&2; }

ver="$(dpkg-query -W -f='${Version}' ngspice 2>/dev/null || true)"
[ -n "$ver" ] || { say "ngspice is not installed as a Debian package; cannot build"; exit 1; }
upstream="${ver#*:}"  # file names carry no epoch
out="$build/noisecell-$upstream.cm"
models=($(cat "$here/modpath.lst"))  # one folder per code model (nc_chan, nc_unit)
srcs=("$here/build.sh" "$here/modpath.lst")
for m in "${models[@]}"; do srcs+=("$here/$m/ifspec.ifs" "$here/$m/cfunc.mod"); done
if [ -f "$out" ]; then
  fresh=1
  for f in "${srcs[@]}"; do [ "$f" -nt "$out" ] && fresh=0; done
  [ "$fresh" = 1 ] && exit 0
fi

# --- the tools (CI runs as root on a fresh Debian machine) ---------------------------------------
need=()
for t in gcc:gcc flex:flex bison:bison; do command -v "${t%%:*}" >/dev/null || need+=("${t##*:}"); done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  say "installing ${need[*]}"
  $sudo apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || \
    { $sudo apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

# --- the ngspice source of the installed version -------------------------------------------------
src="$build/ngspice-src-$upstream"
if [ ! -d "$src/src/xspice/cmpp" ]; then
  apt_dir="$build/apt"
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/sources.list.d" "$build/dl"
  rm -f "$apt_dir/sources.list.d/"*
  # deb-src twins of every enabled deb entry (one-line .list and deb822 .sources formats)
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] && sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f"
  done > "$apt_dir/sources.list.d/deb-src.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && sed -e 's/^Types:.*/Types: deb-src/' "$f" > "$apt_dir/sources.list.d/$(basename "$f")"
  done
  aptc=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$apt_dir/sources.list.d"
        -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "APT::Sandbox::User=root" -qq)
  apt-get "${aptc[@]}" update >/dev/null 2>&1 || true  # a third-party entry without sources must not stop us
  (cd "$build/dl" && apt-get "${aptc[@]}" source --download-only "ngspice=$ver" >/dev/null 2>&1) || \
    { say "could not download Debian's ngspice $ver source package (no deb-src for it?)"; exit 1; }
  orig="$(ls "$build/dl"/ngspice_"${upstream%-*}".orig.tar.* 2>/dev/null | head -1)"
  [ -n "$orig" ] || { say "no ngspice orig tarball in $build/dl"; exit 1; }
  rm -rf "$src.tmp" && mkdir -p "$src.tmp"
  tar -xf "$orig" -C "$src.tmp" --strip-components=1 --wildcards \
    '*/src/xspice/cmpp/*' '*/src/xspice/icm/dlmain.c' '*/src/include/*' '*/src/misc/dstring.c'
  rm -rf "$src" && mv "$src.tmp" "$src"
fi

# --- cmpp, then the code model -------------------------------------------------------------------
work="$build/work-$upstream"
rm -rf "$work" && mkdir -p "$work/cmpp" "$work/cm" "$work/include/ngspice"
(cd "$work/cmpp"
 cp "$src"/src/xspice/cmpp/*.[chly] .
 bison -d -o ifs_yacc.c ifs_yacc.y 2>/dev/null
 bison -d -o mod_yacc.c mod_yacc.y 2>/dev/null
 flex -o ifs_lex.c ifs_lex.l
 flex -o mod_lex.c mod_lex.l
 gcc -O1 -w -I. -o cmpp main.c file_buffer.c pp_ifs.c pp_lst.c pp_mod.c read_ifs.c writ_ifs.c util.c \
     ifs_lex.c ifs_yacc.c mod_lex.c mod_yacc.c)
# The headers' configuration must match the installed library's build: XSPICE adds the code-model
# fields to the device descriptor (ifsim.h), CIDER two entries to the device table (devdefs.h), OSDI
# one more descriptor field (ifsim.h). Probed from the installed ngspice itself: XSPICE devices,
# CIDER's NUMD device and the `osdi` command are there or not.
probe="$work/probe"
mkdir -p "$probe"
printf '* probe\nV1 a 0 1\nR1 a 0 1\n.control\ndevhelp\nosdi\n.endc\n.end\n' > "$probe/probe.cir"
(cd "$probe" && HOME="$probe" ngspice -b probe.cir > probe.log 2>&1 || true)
grep -q "^square " "$probe/probe.log" || { say "the installed ngspice has no XSPICE support"; exit 1; }
{ echo "#define XSPICE 1"
  grep -q "^NUMD " "$probe/probe.log" && echo "#define CIDER 1"
  grep -q "osdi: no such command" "$probe/probe.log" || echo "#define OSDI 1"
  printf '#define HAVE_STDINT_H 1\n#define HAVE_STRING_H 1\n#define HAVE_LIMITS_H 1\n#define STDC_HEADERS 1\n'
} > "$work/include/ngspice/config.h"
cp "$here/modpath.lst" "$here/udnpath.lst" "$work/cm/"
cmpp="$work/cmpp/cmpp"
for m in "${models[@]}"; do
  mkdir -p "$work/cm/$m"
  cp "$here/$m/ifspec.ifs" "$here/$m/cfunc.mod" "$work/cm/$m/"
done
(cd "$work/cm" && CMPP_IDIR=. CMPP_ODIR=. "$cmpp" -lst)  # reads every model's ifspec.ifs
for m in "${models[@]}"; do
  (cd "$work/cm/$m" && CMPP_IDIR=. CMPP_ODIR=. "$cmpp" -ifs && CMPP_IDIR=. CMPP_ODIR=. "$cmpp" -mod)
done
inc=(-I"$work/include" -I"$src/src/include" -I"$work/cm")
cflags=(-O2 -fPIC -fvisibility=hidden -w)
gcc "${cflags[@]}" "${inc[@]}" -c "$src/src/xspice/icm/dlmain.c" -o "$work/cm/dlmain.o"
gcc "${cflags[@]}" "${inc[@]}" -c "$src/src/misc/dstring.c" -o "$work/cm/dstring.o"
for m in "${models[@]}"; do
  gcc "${cflags[@]}" "${inc[@]}" -I"$work/cm/$m" -c "$work/cm/$m/cfunc.c" -o "$work/cm/$m-cfunc.o"
  gcc "${cflags[@]}" "${inc[@]}" -I"$work/cm/$m" -c "$work/cm/$m/ifspec.c" -o "$work/cm/$m-ifspec.o"
done
gcc -shared -fvisibility=hidden "$work"/cm/*.o -lm -o "$out.tmp"
# smoke test in the installed ngspice: load it and run one transient through an nc_chan and an nc_unit instance.
# ngspice lower-cases the pre_codemodel path and the build folder may have capitals (a worktree, a
# home folder), so the test loads a copy beside the netlist by the relative path ./nc.cm.
cp "$out.tmp" "$probe/nc.cm"
cat > "$probe/smoke.cir" <<EOF
* nc_chan smoke test
.model nc_chan_m nc_chan(q=1.602176634e-19 vt=0.02585 eps=1e-6 floor=1e-34)
Vs d dd 0
R1 dd 0 1k
V1 d 0 0.2
Vu u 0 DC 0 SIN(0 1 1meg)
Anc1 %vnam Vs %vd(d 0) [u] %id(d 0) nc_chan_m
.model nc_unit_m nc_unit(nt=10n seed=1 bkpt=1)
Anu un nc_unit_m
.tran 10n 1u
.control
pre_codemodel ./nc.cm
run
print v1#branch[50]
print v(un)[50]
quit
.endc
.end
EOF
(cd "$probe" && HOME="$probe" ngspice -b smoke.cir > smoke.log 2>&1) && grep -qi "v1#branch" "$probe/smoke.log" && \
  grep -qi "^v(un)" "$probe/smoke.log" || \
  { rm -f "$out.tmp"; say "the built code model did not run in the installed ngspice (see $probe/smoke.log)"; exit 1; }
mv "$out.tmp" "$out"
rm -rf "$work/cmpp" "$work/cm"
say "built $out"
