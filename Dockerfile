# syntax=docker/dockerfile:1
#
# Payment ledger image. Build: docker build -t payment-ledger .
# Run alone (embedded PGlite in the /data volume): docker run -p 8080:8080 -v ledger-data:/data payment-ledger
# With PostgreSQL, Redis and Redpanda: docker compose up --build (docs/configuration.md, "With Docker Compose")
# Operator commands in a container: node dist/scripts/apikey.js …, node dist/scripts/ledger-check.js

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------------------------
# npm shared by the stages that install from package-lock.json.
FROM ${NODE_IMAGE} AS npm-base
# package-lock.json is written by npm 11. The npm 10 bundled with Node 20 resolves optional peer dependencies
# differently (it wants an extra esbuild under vitest), so its `npm ci` rejects the lockfile as out of sync.
# Keep this equal to the npm that developers use to update the lockfile.
ARG NPM_VERSION=11.19.1
ENV npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false
RUN --mount=type=cache,target=/root/.npm npm install --global "npm@${NPM_VERSION}"
WORKDIR /app
COPY package.json package-lock.json ./

# ---------------------------------------------------------------------------------------------------------------
# Compiles src/ and gen/ to dist/ with tsc.
FROM npm-base AS build
# Install scripts only belong to dev tools (esbuild, buf, protobufjs); tsc needs none of them, so skipping them
# keeps third-party code from running at build time.
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY gen ./gen
COPY src ./src
# The operator commands run inside the image too (first API key, ledger check): see docs/configuration.md, "With Docker Compose".
COPY scripts/apikey.ts scripts/dev-keys.ts scripts/ledger-check.ts ./scripts/
RUN npm run build
# The browser wallet (served at /wallet/ in embedded mode, SERVE_WALLET): static files built by Vite.
COPY wallet ./wallet
RUN npm run wallet:build

# ---------------------------------------------------------------------------------------------------------------
# Runtime dependencies only, in their own stage so this layer is reused until package-lock.json changes,
# whatever happens to src/.
FROM npm-base AS prod-deps
# Install scripts stay on here: a future native dependency should fail the build loudly (no compiler in slim)
# rather than ship broken.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev

# ---------------------------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    DATA_DIR=/data/pglite
WORKDIR /app

# Copied as root and left root-owned: the service user can read its code but not rewrite it.
COPY --from=prod-deps /app/node_modules ./node_modules
# package.json is needed at run time: its "type": "module" makes Node load dist/*.js as ESM, and the migration
# runner finds drizzle/ by walking up to the directory holding package.json and drizzle/.
COPY package.json ./
COPY drizzle ./drizzle
COPY --from=build /app/dist ./dist
# src/server/wallet.ts looks for the wallet two folders above itself: dist/wallet/dist once compiled.
COPY --from=build /app/wallet/dist ./dist/wallet/dist

# Embedded PGlite writes here when DATABASE_URL is unset. Owned by node so a fresh named volume, which Docker
# seeds from this directory, is writable by the service user too.
RUN mkdir -p /data/pglite && chown -R node:node /data
VOLUME ["/data"]

USER node
EXPOSE 8080

# /healthz is liveness only (no database round trip; /readyz does that), so a slow database does not get the
# container reported unhealthy. Node's own fetch because the slim image has no curl or wget. Plain HTTP on
# 127.0.0.1: adjust if TLS_CERT_FILE is set or HOST is narrowed to a non-loopback address.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# Node runs as PID 1 with no init (no tini, no compose `init: true`). The kernel gives PID 1 no default signal
# actions, but src/main.ts installs its own SIGTERM/SIGINT handlers (drain in-flight requests, close the
# database, exit), so `docker stop` shuts down cleanly. An init would only be needed to reap zombie children, and
# the service spawns no child processes. Exec-form CMD (no shell) keeps node itself as PID 1 so it gets the signal.
STOPSIGNAL SIGTERM
# The heap is bounded (live data is ~30 MB; every queue and payload has its own bound): without the bound V8 let
# promoted garbage grow the old space to 100-450 MB between collections (peak RSS 240-520 MB under load; with
# it about 145 MB). The same flags as `npm start` and `npm run start:dist` (test/unit/node-flags.test.ts).
CMD ["node", "--max-old-space-size=256", "dist/src/main.js"]
