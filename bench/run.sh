#!/bin/sh
# Runs nabla's benchmarks and the peers (numpy/OpenBLAS, PyTorch) interleaved and prints the comparison table.
#     bench/run.sh [--build DIR] [options of bench/compare.py: --rounds N --reps N --threads 1,2 --quick ...]
# DIR defaults to ./build-bench when it exists, else ./build (relative to the source tree). The peers need
# Debian's python3 with python3-numpy and python3-torch; a missing one is skipped with a message.
here=$(cd "$(dirname "$0")" && pwd)
build=""
for arg in "$@"; do
    case "$arg" in --build|--build=*) build=given ;; esac
done
if [ -z "$build" ]; then
    if [ -d "$here/../build-bench" ]; then set -- --build "$here/../build-bench" "$@"
    else set -- --build "$here/../build" "$@"; fi
fi
python=/usr/bin/python3
[ -x "$python" ] || python=python3
exec "$python" "$here/compare.py" --python "$python" "$@"
