#!/usr/bin/env bash
# Mutation testing (mutmut 3.x) of the two gatekeepers: locara_build/core/extract.py and
# locara_build/release/signing/minisign.py, against the tests that reach them in-process.
# Run by hand (`make mutation`), never in CI: about 20-40 min on 2 cores.
#
# The run happens in a private copy of the working tree (MUTATION_DIR, default
# ~/.cache/locara-build/mutation), so neither the mutmut config nor its `mutants/` folder ever
# lands in the checkout. Prints the kill rate per module and every survivor; the results
# stay in $MUTATION_DIR/mutants (`cd $MUTATION_DIR && mutmut show NAME` shows one mutant).
#
# Knobs: MUTATION_FROM (a git rev: measure the modules and tests of that commit), MUTATION_DIR, MUTATION_JOBS (parallel children, default: nproc), MUTATION_MODULES
# ("extract minisign", or one of them).
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
WORK="${MUTATION_DIR:-$HOME/.cache/locara-build/mutation}"
JOBS="${MUTATION_JOBS:-$(nproc)}"
MODULES="${MUTATION_MODULES:-extract minisign}"
PY="${PYTHON:-python3}"

if ! "$PY" -c 'import mutmut, sys; sys.exit(0 if int(mutmut.__version__.split(".")[0]) >= 3 else 1)' 2>/dev/null; then
    echo "+ $PY -m pip install -e '.[mutation]'"
    "$PY" -m pip install -q --disable-pip-version-check -e "$REPO[mutation]"
fi

only=()
tests=()
for m in $MODULES; do
    case "$m" in
        extract)
            only+=('"locara_build/core/extract.py"')
            tests+=('"tests/test_extract_safety.py"' '"tests/test_extract_cases.py"')  # the property tests: random, slow; not here
            ;;
        minisign)
            only+=('"locara_build/release/signing/minisign.py"')
            tests+=('"tests/test_sign_minisign.py"' '"tests/test_minisign_cases.py"')
            ;;
        *) echo "unknown module $m (extract | minisign)" >&2; exit 2 ;;
    esac
done
join() { local IFS=,; echo "$*"; }
present=()
for t in "${tests[@]}"; do [ -f "$REPO/${t//\"/}" ] && present+=("$t"); done
tests=("${present[@]}")

rm -rf "$WORK"
mkdir -p "$WORK"
# the working tree as it is (committed or not), without ignored files
(cd "$REPO" && git ls-files -co --exclude-standard -z -- locara_build tests docs pyproject.toml \
    | tar --null -T - -cf -) | tar -C "$WORK" -xf -
# MUTATION_FROM=<rev>: the two modules and their tests as they were at <rev> (the "before" numbers)
if [ -n "${MUTATION_FROM:-}" ]; then
    for f in locara_build/core/extract.py locara_build/release/signing/minisign.py tests/test_extract_safety.py \
             tests/test_extract_cases.py tests/test_properties_extract.py tests/test_sign_minisign.py tests/test_minisign_cases.py; do
        rm -f "$WORK/$f"
        (cd "$REPO" && git show "$MUTATION_FROM:$f" > "$WORK/$f" 2>/dev/null) || rm -f "$WORK/$f"
    done
    present=()
    for t in "${tests[@]}"; do [ -f "$WORK/${t//\"/}" ] && present+=("$t"); done
    tests=("${present[@]}")
fi
cat >> "$WORK/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["locara_build"]
also_copy = ["docs"]
only_mutate = [$(join "${only[@]}")]
pytest_add_cli_args_test_selection = [$(join "${tests[@]}")]
# minisign -G's own 1 GiB scrypt key: 40 s per run; the other scrypt branch and the memory cap
# are covered by cheap keys in tests/test_minisign_cases.py
pytest_add_cli_args = ["-p", "no:cacheprovider", "--deselect", "tests/test_sign_minisign.py::test_encrypted_key_from_minisign_G_signs_for_minisign_V"]
EOF

cd "$WORK"
start=$(date +%s)
nice -n 10 "$PY" -m mutmut run --max-children "$JOBS" > mutmut-run.log 2>&1 || { tail -40 mutmut-run.log; exit 1; }
"$PY" -m mutmut results --all true > results.txt
echo "mutation run: $(( $(date +%s) - start )) s, results in $WORK/results.txt"
"$PY" - <<'EOF'
import collections, re
counts = collections.defaultdict(collections.Counter)
survivors = collections.defaultdict(list)
for line in open("results.txt"):
    m = re.match(r"\s*(\S+): (.+)$", line)
    if not m:
        continue
    name, status = m.groups()
    module = "extract" if "extract" in name.split("__mutmut")[0] else "minisign"
    counts[module][status] += 1
    if status != "killed":
        survivors[module].append(f"{name}: {status}")
for module, c in counts.items():
    total = sum(c.values())
    print(f"{module}: {c['killed']}/{total} killed = {100 * c['killed'] / total:.1f} %  ({dict(c)})")
for module, names in survivors.items():
    print(f"-- {module}: not killed")
    for n in names:
        print("   ", n)
EOF
