#!/usr/bin/env bash
# usage: install_test.sh SOURCE_DIR MESON
# Installs nabla from SOURCE_DIR into a temporary prefix (a separate, unsanitized build without tests or
# examples), checks the generated nabla.pc, then compiles an out-of-tree program the way a user would,
#     cc app.c $(pkg-config --cflags --libs nabla)
# runs it against the installed shared library, and links it statically too. Writes only to a temporary
# directory.
set -euo pipefail
src=$1 meson=$2
cc=${CC:-cc}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nabla-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

step() { # step LOG COMMAND...: runs COMMAND quietly, shows its log when it fails
    local log=$1
    shift
    if ! "$@" >"$log" 2>&1; then
        cat "$log"
        echo "install_test: failed: $*" >&2
        exit 1
    fi
}
step "$tmp/setup.log" "$meson" setup "$tmp/build" "$src" --prefix="$tmp/prefix" -Dtests=false -Dexamples=false \
    -Db_sanitize=none -Dbuildtype=release
step "$tmp/compile.log" "$meson" compile -C "$tmp/build"
step "$tmp/install.log" "$meson" install -C "$tmp/build"

pc=$(find "$tmp/prefix" -name nabla.pc)
[ -n "$pc" ] || { echo "install_test: no nabla.pc installed" >&2; exit 1; }
echo "--- $pc"
cat "$pc"
for line in 'Cflags: -I${includedir}/nabla' 'Libs: -L${libdir} -lnabla' 'Libs.private: -lm -pthread'; do
    grep -qxF "$line" "$pc" || { echo "install_test: nabla.pc lacks the line '$line'" >&2; exit 1; }
done
for h in nabla.h nb_tensor.h nb_autograd.h; do
    [ -f "$tmp/prefix/include/nabla/$h" ] || { echo "install_test: include/nabla/$h not installed" >&2; exit 1; }
done
export PKG_CONFIG_PATH
PKG_CONFIG_PATH=$(dirname "$pc")
libdir=$(pkg-config --variable=libdir nabla)

mkdir "$tmp/app"
cat >"$tmp/app/app.c" <<'C'
#include <nabla.h>
#include <stdio.h>

int main(void)
{
    nb_tensor *a = nb_full(NB_SHAPE(1), 3.0, NB_F32);
    if (nb_set_requires_grad(a, true) != NB_OK) return 1;
    nb_scope_begin();
    nb_tensor *y = nb_mul(nb_mul(a, a), a);
    if (nb_backward(y) != NB_OK) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    printf("nabla %d.%d.%d: y = %g, dy/da = %g\n", NB_VERSION_MAJOR, NB_VERSION_MINOR, NB_VERSION_PATCH,
           nb_item(y), nb_item(nb_grad(a)));
    nb_scope_end();
    nb_free(a);
    return 0;
}
C
cd "$tmp/app"
# nabla.pc's version comes from meson.build, the program's from the header's NB_VERSION_*: they must agree.
expected="nabla $(pkg-config --modversion nabla): y = 27, dy/da = 27"
# The public headers must be clean C11 for users' strict builds.
flags=(-std=c11 -pedantic -Wall -Wextra -Werror)
# shellcheck disable=SC2046 # word splitting of pkg-config's output is the point
"$cc" "${flags[@]}" app.c $(pkg-config --cflags --libs nabla) -o app_shared
# shellcheck disable=SC2046
"$cc" "${flags[@]}" app.c $(pkg-config --cflags nabla) $(pkg-config --static --libs nabla | sed "s|\(^\| \)-lnabla\( \|$\)|\1$libdir/libnabla.a\2|") \
    -o app_static
for app in app_shared app_static; do
    out=$(LD_LIBRARY_PATH="$libdir" "./$app")
    echo "$app: $out"
    [ "$out" = "$expected" ] || { echo "install_test: $app printed '$out', expected '$expected'" >&2; exit 1; }
done
# The shared build must really use the installed library.
LD_LIBRARY_PATH="$libdir" ldd ./app_shared | grep -F "$libdir/libnabla.so" >/dev/null ||
    { echo "install_test: app_shared does not load $libdir/libnabla.so" >&2; exit 1; }
echo "install_test: ok"
