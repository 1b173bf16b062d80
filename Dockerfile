# dkim-relay in a container. Build: docker compose build. The relay's identity is the host's
# IP and PTR, so docker-compose.yml runs it with network_mode: host.
# BASE_IMAGE: the official Node.js 24 image, or one like it (Debian with node, npm and a
# `node` user of uid 1000) where Docker Hub is out of reach: --build-arg BASE_IMAGE=...
ARG BASE_IMAGE=node:24-slim

# --- build: TypeScript -> dist/ (needs the dev dependencies) ---
FROM ${BASE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

# --- runtime: production dependencies only, non-root ---
FROM ${BASE_IMAGE}
ENV NODE_ENV=production \
    RELAY_KEYS_DIR=/var/lib/dkim-relay/keys \
    RELAY_DATA_DIR=/var/lib/dkim-relay/data \
    RELAY_USERS_FILE=/etc/dkim-relay/users.json
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build with TypeScript, which is a dev dependency; dist/ comes from the build stage
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY config/default.json ./config/default.json
# `dkim-relay` on PATH, for `docker compose exec dkim-relay dkim-relay COMMAND`
RUN ln -s /app/bin/dkim-relay.js /usr/local/bin/dkim-relay \
 && mkdir -p /var/lib/dkim-relay/keys /var/lib/dkim-relay/data /etc/dkim-relay \
 && chown -R node:node /var/lib/dkim-relay /etc/dkim-relay
USER node
EXPOSE 2587
# Healthy when ready: with RELAY_HTTP_LISTEN set, /readyz answers 200 (spool writable,
# submission listening, identity known; RELAY_HTTP_TOKEN sent when set); without it, the
# submission port (RELAY_SUBMISSION_HOST, RELAY_SUBMISSION_PORT) greets with 220.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["node", "bin/healthcheck.js"]
ENTRYPOINT ["node", "bin/dkim-relay.js"]
CMD ["serve"]
