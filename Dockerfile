# Herald image: one image for the worker and the balancer (docker-compose.yml picks the command).
#   docker build -t herald .
#   docker run -p 8080:8080 herald                      # one worker, embedded broker
FROM node:20-bookworm-slim AS manifests
WORKDIR /app
COPY packages ./packages
RUN find packages -mindepth 2 -maxdepth 2 ! -name package.json -exec rm -rf {} +

FROM node:20-bookworm-slim AS build
# The balancer's native relay (packages/relay/native, @herald/relay) is compiled by node-gyp against the
# image's own Node headers; without these tools it falls back to Node's stream pipes.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
# The manifests first, then `npm ci`, then the sources: a source change reuses the installed
# dependencies layer. The `manifests` stage keeps only packages/*/package.json (whatever the
# workspaces are); it reruns on every change, but its output — and so the cache key of the
# COPY below — changes only with a manifest.
COPY package.json package-lock.json tsconfig.json ./
COPY --from=manifests /app/packages ./packages
# Scripts stay off (the root `prepare` would build before the sources are there); the build
# runs explicitly below.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY packages ./packages
RUN npm run build
RUN npm prune --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
EXPOSE 8080
# SIGTERM must reach node itself (graceful drain), so no shell in between.
CMD ["node", "packages/server/dist/bin/herald-worker.js"]
