# Sourced by the scripts that run suites with outside tools (flag-provider-e2e.sh,
# realtime-e2e.sh, bench-realtime.sh): find Python and Node, and keep a suite's pinned
# packages installed in target/, reinstalled only when its lock files change.
# The sourcing script sets `label` (its name, for messages) first.

fail() { echo "$label: $*" >&2; exit 2; }

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

# Sets `python` to a Python 3.11+ that can create virtual environments ($PYTHON wins).
find_python() {
  python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
  fi
  [ -n "$python" ] || fail "python3 (3.11 or newer) is required but was not found on PATH; install it or set PYTHON"
  command -v "$python" >/dev/null 2>&1 || fail "$python (from PYTHON) was not found"
  "$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
    || fail "$python is $("$python" --version 2>&1); 3.11 or newer is required (set PYTHON)"
  "$python" -c 'import venv, ensurepip' 2>/dev/null \
    || fail "$python cannot create virtual environments (on Debian/Ubuntu: apt-get install python3-venv)"
}

# Fails unless node 20+ and npm are on PATH.
require_node() {
  command -v node >/dev/null 2>&1 || fail "node (20 or newer) is required but was not found on PATH"
  command -v npm >/dev/null 2>&1 || fail "npm is required but was not found on PATH"
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
    || fail "node $(node --version) is too old; 20 or newer is required"
}

# python_env DIR REQUIREMENTS: a venv in DIR with REQUIREMENTS installed, rebuilt from scratch
# when the requirements or the interpreter change. Needs `find_python` first.
python_env() {
  local venv=$1 requirements=$2 stamp
  stamp="$(hash_of "$requirements")-$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
  if [ "$(cat "$venv/.stamp" 2>/dev/null || true)" = "$stamp" ]; then return 0; fi
  echo "$label: installing Python packages into $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" > "$venv/.stamp"
}

# node_env DIR SOURCE: SOURCE's package.json and package-lock.json copied to DIR and installed
# with `npm ci` when they change. Needs `require_node` first.
node_env() {
  local dir=$1 source=$2 stamp
  stamp="$(hash_of "$source/package.json" "$source/package-lock.json")"
  if [ "$(cat "$dir/.stamp" 2>/dev/null || true)" = "$stamp" ]; then return 0; fi
  echo "$label: installing Node packages into $dir"
  rm -rf "$dir"
  mkdir -p "$dir"
  cp "$source/package.json" "$source/package-lock.json" "$dir/"
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$stamp" > "$dir/.stamp"
}
