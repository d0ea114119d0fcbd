# Shared by scripts/serve and scripts/test: make .venv if missing and install the project into it.
# Re-installs only when pyproject.toml changed since the last install (stamp file in .venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extra="${1:-}"
py="${PYTHON:-python3}"
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "voicebot needs Python >= 3.11 (found: $("$py" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$root/.venv/bin/python" ]; then
    if ! "$py" -m venv "$root/.venv" 2>/dev/null; then
        # Debian splits venv out of the interpreter package.
        if command -v apt-get >/dev/null 2>&1; then
            apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
            "$py" -m venv "$root/.venv"
        else
            echo "could not create a virtual environment with $py -m venv" >&2
            exit 1
        fi
    fi
fi
stamp="$root/.venv/.voicebot-installed${extra:+-$extra}"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
    "$root/.venv/bin/python" -m pip install -q --upgrade pip
    "$root/.venv/bin/python" -m pip install -q -e "$root${extra:+[$extra]}"
    touch "$stamp"
fi
