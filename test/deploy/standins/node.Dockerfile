# Stand-in for node:20-bookworm-slim (the registry cannot be reached from the test machine):
# Debian bookworm (minbase, imported as herald-standin/bookworm) with this machine's Node 20 in
# /usr/local — node, npm, npx and the headers node-gyp compiles against — a `node` user with
# uid/gid 1000, and the official image's entrypoint behaviour. Built by test/deploy/standins.ts.
ARG BASE
FROM ${BASE}
COPY usr/local /usr/local
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && node --version && npm --version
# The network of the test machine re-signs TLS with its own CA: npm and node inside the image
# trust it the way the machine itself does. The real image needs nothing of the kind.
ENV NODE_EXTRA_CA_CERTS=/usr/local/share/herald-standin/ca-certificates.crt
COPY node-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["node"]
