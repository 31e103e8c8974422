#!/bin/sh
# As in the official redis image: flags or a *.conf as first argument run under redis-server,
# which runs as the redis user. The official build turns protected mode off by default (other
# containers must reach it without a password); Debian's binary keeps it on, so say it here.
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  set -- redis-server --protected-mode no "$@"
  if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
