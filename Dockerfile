# Herald image: one image for the worker and the balancer (docker-compose.yml picks the command).
#   docker build -t herald .
#   docker run -p 8080:8080 herald                      # one worker, embedded broker
FROM node:20-bookworm-slim AS build
# The balancer's native relay (packages/relay/native, @herald/relay) is compiled by node-gyp against the
# image's own Node headers; without these tools it falls back to Node's stream pipes.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY packages ./packages
# Scripts stay off (the root `prepare` would build before the sources are complete); the build
# runs explicitly below.
RUN npm ci --no-audit --no-fund --ignore-scripts
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
