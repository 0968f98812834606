#!/usr/bin/env bash
# usage: subproject_test.sh SOURCE_DIR MESON
# Builds a throwaway meson project that gets nabla as a subproject, through dependency('nabla', fallback : ...)
# (resolved by nabla's meson.override_dependency), and runs its program. Writes only to a temporary directory.
set -euo pipefail
src=$1 meson=$2
tmp=$(mktemp -d "${TMPDIR:-/tmp}/nabla-subproject.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/app/subprojects"
ln -s "$(cd "$src" && pwd)" "$tmp/app/subprojects/nabla"
cat >"$tmp/app/meson.build" <<'MESON'
project('app', 'c', default_options : ['c_std=c11'])
executable('app', 'app.c', dependencies : dependency('nabla', fallback : 'nabla'))
MESON
cat >"$tmp/app/app.c" <<'C'
#include <nabla.h>
#include <stdio.h>

int main(void)
{
    nb_tensor *t = nb_add(nb_ones(NB_SHAPE(2), NB_F32), nb_full(NB_SHAPE(1), 41, NB_F32));
    if (!t) {
        fprintf(stderr, "%s\n", nb_last_error());
        return 1;
    }
    printf("%g\n", nb_get_flat(t, 1));
    return 0;
}
C
# Force the subproject even where an installed nabla exists.
if ! "$meson" setup "$tmp/build" "$tmp/app" --force-fallback-for=nabla -Db_sanitize=none >"$tmp/setup.log" 2>&1 ||
    ! "$meson" compile -C "$tmp/build" >"$tmp/compile.log" 2>&1; then
    cat "$tmp"/*.log
    echo "subproject_test: building a project that uses nabla as a subproject failed" >&2
    exit 1
fi
out=$("$tmp/build/app")
[ "$out" = 42 ] || { echo "subproject_test: the program printed '$out', expected 42" >&2; exit 1; }
echo "subproject_test: ok"
