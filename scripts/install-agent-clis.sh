#!/usr/bin/env bash
# Install the agent CLIs pinned in scripts/agent-cli-versions.txt into .cache/agent-clis/ (git-ignored):
#   npm packages -> .cache/agent-clis/npm/node_modules/.bin/{claude,codex,opencode,gemini}
#   aider        -> .cache/agent-clis/aider-venv/bin/aider (its own venv: its pins clash with ours)
# Idempotent: a part whose pins have not changed since its last successful install is left alone.
# Downloads are cached in .cache/agent-clis/{npm-cache,pip-cache}.
#
# Usage: scripts/install-agent-clis.sh [--check]
#   --check   install nothing; exit 1 naming each CLI that is missing or at another version
# Exit status: 0 when every CLI is installed at its pinned version, 1 otherwise (each failure named).
set -uo pipefail
cd "$(dirname "$0")/.."

pins_file=scripts/agent-cli-versions.txt
root=${TUIORCH_AGENT_CLIS:-.cache/agent-clis}
check_only=0
[ "${1:-}" = "--check" ] && check_only=1

npm_specs=()
aider_version=""
while read -r registry package version; do
  case "$registry" in
    npm) npm_specs+=("$package@$version") ;;
    pypi) [ "$package" = "aider-chat" ] && aider_version=$version ;;
  esac
done < <(grep -v '^\s*#' "$pins_file" | grep -v '^\s*$')

failed=()
mkdir -p "$root"

# Codex's workspace-write sandbox runs commands under bubblewrap.
if ! command -v bwrap >/dev/null 2>&1 && [ "$check_only" -eq 0 ] && [ "$(id -u)" -eq 0 ]; then
  echo "installing bubblewrap (codex's sandbox)"
  (apt-get update -qq && apt-get install -y -qq bubblewrap) >/dev/null || failed+=("bubblewrap (apt-get)")
fi

# --- npm CLIs ---------------------------------------------------------------------------------------------
npm_dir=$root/npm
npm_stamp=$npm_dir/.installed
npm_want=$(printf '%s\n' "${npm_specs[@]}")
if [ "$check_only" -eq 0 ] && ! { [ -f "$npm_stamp" ] && [ "$(cat "$npm_stamp")" = "$npm_want" ]; }; then
  if ! command -v npm >/dev/null 2>&1; then
    failed+=("npm CLIs (npm is not installed; Node.js 20 or newer is needed)")
  else
    echo "installing ${npm_specs[*]}"
    mkdir -p "$npm_dir"
    rm -f "$npm_stamp"
    # The CLIs ship their native binaries as optional dependencies; --omit=dev keeps the rest out.
    [ -f "$npm_dir/package.json" ] || echo '{"private": true}' > "$npm_dir/package.json"
    if npm install --prefix "$npm_dir" --cache "$root/npm-cache" --save-exact --no-audit --no-fund \
        --loglevel=error --omit=dev "${npm_specs[@]}"; then
      printf '%s\n' "$npm_want" > "$npm_stamp"
    else
      failed+=("npm install ${npm_specs[*]}")
    fi
  fi
fi

# --- aider ------------------------------------------------------------------------------------------------
venv=$root/aider-venv
aider_stamp=$venv/.installed
if [ "$check_only" -eq 0 ] && ! { [ -f "$aider_stamp" ] && [ "$(cat "$aider_stamp")" = "$aider_version" ]; }; then
  python=$(command -v python3.11 || command -v python3)
  if ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    failed+=("aider-chat (it installs on Python 3.11; $python is $("$python" --version 2>&1))")
  else
    echo "installing aider-chat==$aider_version"
    rm -f "$aider_stamp"
    if "$python" -m venv "$venv" &&
      PIP_CACHE_DIR=$root/pip-cache "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "aider-chat==$aider_version" 2> >(grep -v '^WARNING: Location ' >&2); then
      echo "$aider_version" > "$aider_stamp"
    else
      failed+=("pip install aider-chat==$aider_version")
    fi
  fi
fi

# --- check what is there ----------------------------------------------------------------------------------
bin=$npm_dir/node_modules/.bin
declare -A expect=(
  [claude]=$(printf '%s\n' "${npm_specs[@]}" | sed -n 's|^@anthropic-ai/claude-code@||p')
  [codex]=$(printf '%s\n' "${npm_specs[@]}" | sed -n 's|^@openai/codex@||p')
  [opencode]=$(printf '%s\n' "${npm_specs[@]}" | sed -n 's|^opencode-ai@||p')
  [gemini]=$(printf '%s\n' "${npm_specs[@]}" | sed -n 's|^@google/gemini-cli@||p')
  [aider]=$aider_version
)
for cli in claude codex opencode gemini aider; do
  exe=$bin/$cli
  [ "$cli" = aider ] && exe=$venv/bin/aider
  if [ ! -x "$exe" ]; then
    failed+=("$cli: not installed at $exe")
    continue
  fi
  got=$(HOME=$root/version-home timeout 120 "$exe" --version 2>/dev/null | head -n 1)
  case "$got" in
    *"${expect[$cli]}"*) echo "$cli ${expect[$cli]}: $exe" ;;
    *) failed+=("$cli: expected version ${expect[$cli]}, $exe --version printed '${got}'") ;;
  esac
done

if [ "${#failed[@]}" -gt 0 ]; then
  printf 'agent CLIs: %s\n' "${failed[@]}" >&2
  exit 1
fi
