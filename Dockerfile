# syntax=docker/dockerfile:1
# mlp-serve, CPU image: Node 20 on Debian slim, onnxruntime's bundled CPU provider.
#   docker build -t mlp-serve:latest .
#   docker run -p 8080:8080 mlp-serve:latest                 # serves the models baked in from models/
#   docker run -p 8080:8080 -v "$PWD/my-models:/app/models:ro" mlp-serve:latest   # serves yours instead
# The container runs the README's start command, `npm start`, under tini (signals reach the server, zombies reaped).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: all dependencies, typecheck, then drop the dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# .npmrc keeps onnxruntime-node from downloading GPU binaries: the CPU ones ship inside the npm package.
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json --noEmit \
 && npm prune --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# ---- runtime: production dependencies, sources, models; non-root ----
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    MODELS_DIR=/app/models \
    EXECUTION_PROVIDERS=cpu \
    MALLOC_MMAP_THRESHOLD_=131072 \
    npm_config_cache=/tmp/.npm \
    npm_config_update_notifier=false
WORKDIR /app
# .npmrc stays behind: it only steers npm ci, and npm start would warn about its onnxruntime key on every start.
COPY --from=build /app/package.json /app/package-lock.json /app/tsconfig.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/src ./src
COPY models ./models
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["npm", "start"]
