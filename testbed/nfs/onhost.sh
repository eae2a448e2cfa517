#!/bin/sh
# onhost.sh HOSTNAME COMMAND [ARG...]
# Runs COMMAND in a new UTS namespace whose host name is HOSTNAME, so that the
# processes on mount A and on mount B look like two machines to a lock library
# (claim files name the host; same-host liveness checks must not apply across).
[ $# -ge 2 ] || { echo "usage: onhost.sh HOSTNAME COMMAND [ARG...]" >&2; exit 2; }
exec unshare --uts -- sh -c 'hostname "$0" && exec "$@"' "$@"
