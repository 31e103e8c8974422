#!/bin/sh
# As in the official nginx image: hooks in /docker-entrypoint.d run before nginx starts.
set -e
if [ "$1" = nginx ] && [ -d /docker-entrypoint.d ]; then
  for hook in /docker-entrypoint.d/*.sh; do
    if [ -x "$hook" ]; then "$hook"; fi
  done
fi
exec "$@"
