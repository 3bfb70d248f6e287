#!/usr/bin/env bash
# Installs what pgherd needs on a fresh Debian machine and prints the path of its
# virtualenv. Idempotent: a second run only reinstalls the project itself.
#
# The virtualenv is built from Debian's /usr/bin/python3 under /var/lib/pgherd, not in the
# checkout: PostgreSQL runs archive_command and restore_command as the `postgres` OS user,
# which cannot reach a checkout under /root or a 0700 temporary directory, and a virtualenv
# built from a python under /root is not executable by it. The project is installed as a
# wheel (not editable) for the same reason.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
log() { printf 'bootstrap: %s\n' "$*" >&2; }

need_root_for_apt() {
    if [ "$(id -u)" -ne 0 ]; then
        log "missing Debian packages: $*; run this as root or install them first"
        exit 1
    fi
}

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    need_root_for_apt "${missing[@]}"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
}

# PostgreSQL server and tools; python3-venv for the virtualenv; zstd for the archive;
# etcd-server for the coordination store (tests and `lab up --dcs etcd`); chromium for the
# console's browser tests (Playwright drives Debian's build: never `playwright install`,
# which downloads a browser); iptables for the multi-host tests' faults (tests/hosts);
# haproxy for the load-balancer tests and bench/haproxy.py;
# prometheus for its `promtool` only (the tests check /metrics and the alert rules with
# it; the server is never started: 19 MB to download, 96 MB installed, promtool 48 MB).
apt_install postgresql-15 postgresql-contrib python3-venv zstd etcd-server util-linux chromium \
    iptables haproxy prometheus ${PGHERD_EXTRA_APT:-}

key=$(printf '%s' "$here" | sha256sum | cut -c1-10)
venv=${PGHERD_VENV:-/var/lib/pgherd/venvs/$(basename "$here")-$key}
mkdir -p "$(dirname "$venv")"
chmod 0755 /var/lib/pgherd /var/lib/pgherd/venvs 2>/dev/null || true

# One installer at a time per virtualenv (tests and the CLI may run side by side).
exec 9>"$venv.lock"
flock 9

# This machine's pip config names package folders that may be absent; hide that noise.
pip_() { "$venv/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2); }

if [ ! -x "$venv/bin/python" ]; then
    log "creating virtualenv $venv (from /usr/bin/python3)"
    /usr/bin/python3 -m venv "$venv"
    pip_ install -q --upgrade pip
fi

deps_stamp="$venv/.deps-$(sha256sum "$here/pyproject.toml" | cut -c1-16)"
if [ ! -e "$deps_stamp" ]; then
    log "installing Python dependencies"
    pip_ install -q hatchling
    # Resolve the dependencies from pyproject.toml; the project itself is installed below.
    pip_ install -q "$here[dev]"
    rm -f "$venv"/.deps-* && touch "$deps_stamp"
fi
# Reinstall the project only when its sources changed since the last install.
src_hash=$(cd "$here" && find src docs/guide pyproject.toml -type f ! -path '*/__pycache__/*' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
if [ "$(cat "$venv/.src-hash" 2>/dev/null)" != "$src_hash" ]; then
    pip_ install -q --no-deps --no-build-isolation --force-reinstall "$here" >/dev/null
    chmod -R a+rX "$venv"
    echo "$src_hash" > "$venv/.src-hash"
fi
echo "$venv"
