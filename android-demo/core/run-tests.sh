#!/usr/bin/env bash
# Compile the pure-Java core and its JUnit tests (javac --release 11) and run them.
# Golden vectors (written by edgesmith.bundle.golden.write_golden) come as arguments or env vars:
#   android-demo/core/run-tests.sh [--image-golden FILE] [--text-golden FILE]
#   EDGESMITH_GOLDEN_IMAGE=FILE EDGESMITH_GOLDEN_TEXT=FILE android-demo/core/run-tests.sh
# Without them the golden tests are skipped. EDGESMITH_DRIFT_OUT=DIR: the golden drift tests also write
# their reports to DIR/<kind>-<scenario>.jsonl (for `edgesmith drift` to read). Prints "java core: N tests, F failures, S skipped in T s".
# Needs a JDK (11+) and Debian's junit4 + libhamcrest-java (setup.sh installs them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${EDGESMITH_GOLDEN_IMAGE:-}"
text="${EDGESMITH_GOLDEN_TEXT:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --image-golden) image="$2"; shift 2 ;;
    --text-golden) text="$2"; shift 2 ;;
    *) echo "usage: $0 [--image-golden FILE] [--text-golden FILE]" >&2; exit 2 ;;
  esac
done
cp_jars=""
for jar in junit4 hamcrest-core; do
  f="${JAVA_LIBS:-/usr/share/java}/$jar.jar"
  [ -f "$f" ] || { echo "missing $f: apt-get install junit4 libhamcrest-java (or run ./setup.sh)" >&2; exit 2; }
  cp_jars="$cp_jars:$f"
done
out="${CORE_BUILD:-$here/build}"
rm -rf "$out/main" "$out/test"
mkdir -p "$out/main" "$out/test"
javac --release 11 -Xlint:all -Werror -d "$out/main" $(find "$here/src/main/java" -name '*.java')
javac --release 11 -d "$out/test" -cp "$out/main$cp_jars" $(find "$here/src/test/java" -name '*.java')
exec java -cp "$out/main:$out/test$cp_jars" \
  -Dedgesmith.golden.image="$image" -Dedgesmith.golden.text="$text" \
  -Dedgesmith.drift.out="${EDGESMITH_DRIFT_OUT:-}" dev.edgesmith.core.RunAll
