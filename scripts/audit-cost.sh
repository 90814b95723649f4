#!/usr/bin/env bash
# What the audit trail costs, measured side by side in one run: this
# commit as released, against the same commit built with
# `--cfg otpd_no_audit` (no events built or written; such a build logs an
# error and its /readyz answers 503, so it cannot pass for a real one).
#
#   scripts/audit-cost.sh            # ROUNDS=3 alternating rounds
#
# Each round runs, for each build in turn: the criterion engine calls
# (verify/right_code, issue/step_up_superseding) and the load tester's
# step-up flow in the closed model (CONCURRENCY workers, DURATION s),
# recording flows/s and otpd's CPU per flow. The builds alternate so the
# machine's drift falls on both. Output: one line per run, then the
# medians and their ratios. docs/CAPACITY.md ("The audit trail") has the
# figures of the last run.
#
# Environment: ROUNDS (3), CONCURRENCY (32), DURATION (10), ACCOUNTS (20000).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
CONCURRENCY=${CONCURRENCY:-32}
DURATION=${DURATION:-10}
export ACCOUNTS=${ACCOUNTS:-20000}

build() { # target dir, rustflags
  CARGO_TARGET_DIR=$1 RUSTFLAGS=$2 cargo build --release -q -p otpd -p otp-loadtest
  CARGO_TARGET_DIR=$1 RUSTFLAGS=$2 cargo bench -q -p otp-bench --bench engine --no-run \
    --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1
}
echo "building both (the second build, into target/no-audit, is a full one the first time)" >&2
with_bench=$(build target "")
without_bench=$(build target/no-audit "--cfg otpd_no_audit")
[ -x "$with_bench" ] && [ -x "$without_bench" ] || { echo "benchmark binaries not found" >&2; exit 1; }

out=$(mktemp -d /tmp/otpd-audit-cost.XXXXXX)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$ROUNDS"); do
  for build in with without; do
    if [ "$build" = with ]; then dir=target; bench=$with_bench; else dir=target/no-audit; bench=$without_bench; fi
    "$bench" --bench 'verify/right_code$|issue/step_up_superseding' --noplot --warm-up-time 1 \
      --output-format bencher 2>/dev/null |
      awk -v b="$build" '/^test / {gsub(",", "", $5); print b, $2, $5 / 1000}' >> "$out/criterion"
    OTPD=$dir/release/otpd LOADTEST=$dir/release/otp-loadtest scripts/loadtest-local.sh \
      --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup 2 --quiet \
      --json "$out/$build-$round.json" > /dev/null 2> "$out/$build-$round.log"
    ticks=$(sed -n 's/.*: \([0-9]*\) CPU ticks.*/\1/p' "$out/$build-$round.log")
    echo "$build $ticks $(getconf CLK_TCK) $out/$build-$round.json" >> "$out/loadtest"
    echo "round $round, $build audit: done" >&2
  done
done

python3 - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
rows = {}
for line in open(f"{out}/criterion"):
    build, name, us = line.split()
    rows.setdefault(name, {}).setdefault(build, []).append(float(us))
for line in open(f"{out}/loadtest"):
    build, ticks, hz, path = line.split()
    run = json.load(open(path))
    flows = run["flows"]["step-up"]
    # otpd's CPU over the whole run (the 2 s warm-up included), per flow
    # at the measured rate over the same time.
    count = flows["per_second"] * (run["measured_seconds"] + 2)
    rows.setdefault("step-up flows/s (load tester)", {}).setdefault(build, []).append(flows["per_second"])
    rows.setdefault("otpd CPU us per flow", {}).setdefault(build, []).append(
        int(ticks) / int(hz) * 1e6 / max(count, 1))
print(f"{'measure':34} {'with audit':>24} {'without':>24} {'ratio':>6}")
for name, by in rows.items():
    w, wo = by.get("with", []), by.get("without", [])
    if not w or not wo:
        continue
    fmt = lambda xs: " ".join(f"{x:.1f}" if x < 1000 else f"{x:.0f}" for x in xs)
    ratio = statistics.median(w) / statistics.median(wo)
    print(f"{name:34} {fmt(w):>24} {fmt(wo):>24} {ratio:6.2f}")
PY
