#!/bin/bash
# SPDX-License-Identifier: MIT OR Apache-2.0
# The issues' budgets (tests/bench/budgets) on the figures of the last tests/bench/bench.sh run
# (tests/out/bench/results) and of the generator suite's image-read benchmark
# (tests/out/bench/results.generators): one PASS or FAIL line per budget, with the figure and its
# limit, then "N passed, M failed". A figure the results do not hold (no run, a run that failed
# and so wrote none, a part left out with SIZES) fails its budget: it was not shown to hold.
# Usage: budget.sh [RESULTS [BUDGETS]]; exit 0 when every budget holds.
set -u
export LC_ALL=C

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${BENCH_OUT:-$repo/tests/out/bench}
results=${1:-$out/results}
# The generator suite's figures beside the bench's (absent: their budgets fail as not measured).
more=${1:+/dev/null}
more=${more:-$out/results.generators}
budgets=${2:-$here/budgets}

[ -r "$budgets" ] || { echo "budget: cannot read $budgets" >&2; echo "0 passed, 1 failed"; exit 1; }
[ -r "$results" ] || echo "budget: no results at $results (run tests/bench/bench.sh first)" >&2

# Every line of the budgets file, judged against the results; awk does the arithmetic.
awk -v results="$results" -v more="$more" '
	function load(file,   line, n, f) {
		while ((getline line < file) > 0) {
			n = split(line, f, " ")
			if (n >= 2) value[f[1]] = f[2]
		}
		close(file)
	}
	BEGIN { load(results); load(more) }
	function num(s) { return s ~ /^-?[0-9]+(\.[0-9]+)?$/ }
	{ sub(/#.*/, "") }
	NF == 0 { next }
	NF != 3 || $2 !~ /^(<=|<|>=|>)$/ {
		printf "FAIL budgets line %d: not KEY OP LIMIT: %s\n", FNR, $0
		failed++
		next
	}
	{
		key = $1; op = $2; lim = $3; limdesc = lim
		if (!num(lim)) {
			if (!(lim in value) || !num(value[lim])) {
				printf "FAIL %s %s %s: %s not measured\n", key, op, lim, lim
				failed++
				next
			}
			limdesc = lim " (" value[lim] ")"
			lim = value[lim]
		}
		if (!(key in value) || !num(value[key])) {
			printf "FAIL %s %s %s: not measured\n", key, op, limdesc
			failed++
			next
		}
		v = value[key] + 0; l = lim + 0
		ok = (op == "<=" && v <= l) || (op == "<" && v < l) || (op == ">=" && v >= l) || (op == ">" && v > l)
		printf "%s %s = %s, budget %s %s\n", (ok ? "PASS" : "FAIL"), key, value[key], op, limdesc
		if (ok) passed++; else failed++
	}
	END {
		printf "%d passed, %d failed\n", passed, failed
		exit failed > 0
	}
' "$budgets"
