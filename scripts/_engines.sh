# Sourced by scripts/test: install the Debian packages of the real engines the tests start themselves
# (PostgreSQL server binaries, redis-server) when missing. Idempotent and quiet; `apt-get update` at most
# once. No service is enabled or started and no "main" cluster is created: the tests run their own
# throw-away instances on loopback (voicebot.testing.run_postgres / run_redis).
_vb_need=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || _vb_need+=(postgresql)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || _vb_need+=(redis-server)
if [ ${#_vb_need[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        echo "note: ${_vb_need[*]} missing and not installable here (need root + apt-get);" \
             "the PostgreSQL/Redis tests will be skipped (they fail under CI=true)" >&2
    else
        echo "== installing ${_vb_need[*]} (Debian packages, for the real-engine tests)"
        _vb_started=$SECONDS
        # Keep maintainer scripts from starting services (Debian's policy-rc.d hook), only if none is set.
        _vb_policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
            _vb_policy=/usr/sbin/policy-rc.d
        fi
        export DEBIAN_FRONTEND=noninteractive
        _vb_apt() { apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
        apt-get update -qq >/dev/null
        _vb_ok=1
        if [[ " ${_vb_need[*]} " == *" postgresql "* ]]; then
            # postgresql-common first, so its createcluster.conf can say "no main cluster" before the server
            # package's postinst would initdb one (seconds of install time and a cluster nobody uses).
            _vb_apt postgresql-common || _vb_ok=0
            if [ -f /etc/postgresql-common/createcluster.conf ]; then
                sed -i 's/^[#[:space:]]*create_main_cluster.*/create_main_cluster = false/' \
                    /etc/postgresql-common/createcluster.conf
            fi
        fi
        _vb_apt "${_vb_need[@]}" || _vb_ok=0
        [ -n "$_vb_policy" ] && rm -f "$_vb_policy"
        if [ "$_vb_ok" = 1 ]; then
            echo "   installed in $((SECONDS - _vb_started)) s"
        else
            echo "warning: apt-get install ${_vb_need[*]} failed; engine tests will be skipped or fail" >&2
        fi
    fi
fi
unset _vb_need _vb_started _vb_policy _vb_ok
