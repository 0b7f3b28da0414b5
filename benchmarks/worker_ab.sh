#!/usr/bin/env bash
# Worker throughput of two builds side by side in one run: BASE (a git revision) and the working tree.
#   benchmarks/worker_ab.sh BASE [ROUNDS] [SHARED]
# Each build is installed (non-editable) into its own folder; benchmarks/pipeline.py's throughput part
# runs against each in turn, ROUNDS times, alternating, so both see the same machine load.
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1; rounds=${2:-2}; shared=$(readlink -f "${3:-${MASKWATCH_SHARED:-../shared}}")
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base-src" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q "$work/base-src" "$base"
py=$PWD/.venv/bin/python
$py -m pip install -q --no-deps --no-build-isolation --target "$work/base" "$work/base-src"
$py -m pip install -q --no-deps --no-build-isolation --target "$work/head" .
rm -rf build "$work/base-src/build"
# the script without its sys.path line, so each run imports only the build under test
sed 's|^sys.path.insert(0, str(Path(__file__).resolve().parents\[1\]))$|pass|' benchmarks/pipeline.py >"$work/pipeline.py"
mkdir -p "$work/benchmarks" && touch "$work/benchmarks/__init__.py" && cp benchmarks/report.py "$work/benchmarks/"
for r in $(seq "$rounds"); do
  for build in base head; do
    (cd "$work" && PYTHONPATH="$work/$build" TF_CPP_MIN_LOG_LEVEL=3 "$py" pipeline.py \
      --shared "$shared" --batches 1,8,32 --cameras "" --out "$work/$build-$r.json" \
      | grep "^batch" | sed "s/^/$build round $r: /")
  done
done
