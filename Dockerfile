# syntax=docker/dockerfile:1
# One image for every service of the workspace; the SERVICE build arg picks which one runs:
#   docker build --build-arg SERVICE=message-store -t session-runtime/message-store .
# SERVICE is a folder name under services/ (gateway, run-service, message-store).

# --- build: install everything, compile every package to dist/, then drop the dev dependencies ---
FROM node:20-slim AS build
ENV CI=true
RUN npm install -g pnpm@12.4.2 && pnpm --version
WORKDIR /app
# The lockfile alone is enough to fetch every package: this layer survives source changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json .npmrc ./
RUN pnpm fetch
COPY . .
RUN pnpm install --frozen-lockfile --offline
RUN pnpm build
# Production dependencies only. The workspace packages stay linked (node_modules/@session-runtime/* ->
# packages/*), and their package exports' default condition points to the dist/ built above.
RUN pnpm install --frozen-lockfile --offline --prod

# --- runtime ---
FROM node:20-slim AS runtime
ARG SERVICE
ENV SERVICE=${SERVICE} \
    NODE_ENV=production \
    HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /app
# COPY keeps pnpm's symlinks; root owns the code, the service only reads it.
COPY --from=build /app /app
RUN if [ -z "$SERVICE" ]; then echo 'build with --build-arg SERVICE=<folder under services/>' >&2; exit 1; fi; \
    if [ ! -f "services/$SERVICE/dist/server.js" ]; then echo "no services/$SERVICE/dist/server.js" >&2; exit 1; fi; \
    mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
# The port variable is named after the service (message-store -> MESSAGE_STORE_PORT); defaults as in config.ts.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD node -e "const s=process.env.SERVICE;const d={gateway:7860,'run-service':7861,'message-store':7862};const p=process.env[s.toUpperCase().replace(/-/g,'_')+'_PORT']||d[s];fetch('http://127.0.0.1:'+p+'/health',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["sh", "-c", "exec node \"services/$SERVICE/dist/server.js\""]
