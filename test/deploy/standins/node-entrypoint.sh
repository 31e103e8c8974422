#!/bin/sh
# As in the official node image: flags or a non-command as first argument run under node.
set -e
if [ "${1#-}" != "$1" ] || ! command -v -- "$1" >/dev/null 2>&1; then
  set -- node "$@"
fi
exec "$@"
