# syntax=docker/dockerfile:1
# mlp-serve, CPU image: Node 24 LTS on Debian slim, the compiled server, production dependencies only.
#   docker build -t registry.example.com/mlp-serve:0.1.0 .
#   docker run -p 8080:8080 registry.example.com/mlp-serve:0.1.0       # serves the models baked in from models/
#   docker run -p 8080:8080 -v "$PWD/my-models:/app/models:ro" registry.example.com/mlp-serve:0.1.0
# The container runs `node dist/serve/server.js` under tini (signals reach the server directly, zombies reaped).

ARG NODE_IMAGE=node:24-bookworm-slim

# ---- build: all dependencies, compile the server to dist/ (npm run build: tsc + the .proto files it loads), then
#      keep production dependencies only ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# onnxruntime-node's install script would download the CUDA provider; the CPU binaries ship inside the npm package.
# package.json's allowScripts denies that script where npm reads it (npm 11); the variable keeps it off for any npm.
COPY package.json package-lock.json .npmrc ./
ENV ONNXRUNTIME_NODE_INSTALL=skip
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# onnxruntime-node ships its binaries for every OS and CPU: only this image's linux/<arch> is kept.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} + \
 && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -path '*/linux/*' ! -name "$(node -p process.arch)" -exec rm -rf {} + \
 && npm cache clean --force

# ---- runtime: compiled server, production dependencies, models; non-root ----
FROM ${NODE_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=8080 \
    GRPC_PORT=8081 \
    HOST=0.0.0.0 \
    MODELS_DIR=/app/models \
    EXECUTION_PROVIDERS=cpu \
    MALLOC_MMAP_THRESHOLD_=131072
WORKDIR /app
# package.json says "type": "module" (dist/ is ESM) and carries the version /v2 reports.
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY models ./models
USER node
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/serve/server.js"]
