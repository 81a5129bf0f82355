# syntax=docker/dockerfile:1
# Lifeboat container image (docs: README.md, "Deploy").
#
#   docker build -t lifeboat .
#   docker run --rm lifeboat --help
#
# One image for every role: `lifeboat serve` (the default command: dashboard,
# API, status page on :8080) and `lifeboat daemon` (an agent: metrics and
# health on :9187). Database client tools (pg_dump, mysqldump, mongodump,
# redis-cli, ...) are not included; add them with --build-arg
# CLIENT_PACKAGES="postgresql-client mariadb-client" or a derived image.

# ---- build: the toolchain for the native addons (better-sqlite3, zstd-napi,
# fs-ext, fs-xattr and native/: the nanosecond timestamp helper, the byte loops, the delta compressor and the hashes)
FROM node:20-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY native ./native
COPY src ./src
COPY bin ./bin
COPY web ./web
# `npm ci` runs the install scripts (node-gyp) and `prepare` (tsc); tests and
# benchmarks are not copied, so only src/ is compiled
RUN npm ci --no-audit --no-fund \
 && test -f dist/src/cli/main.js \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf native/build/Release/obj.target native/build/Release/.deps

# ---- runtime: no compiler, non-root
FROM node:20-bookworm-slim AS runtime
ARG CLIENT_PACKAGES=""
RUN if [ -n "$CLIENT_PACKAGES" ]; then \
      apt-get update && apt-get install -y --no-install-recommends $CLIENT_PACKAGES && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 lifeboat \
 && useradd --system --uid 10001 --gid lifeboat --home-dir /var/lib/lifeboat --shell /usr/sbin/nologin lifeboat \
 && mkdir -p /var/lib/lifeboat /etc/lifeboat \
 && chown lifeboat:lifeboat /var/lib/lifeboat
WORKDIR /opt/lifeboat
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/native/build/Release ./native/build/Release
COPY --from=build /src/bin ./bin
COPY --from=build /src/web ./web
RUN ln -s /opt/lifeboat/bin/lifeboat /usr/local/bin/lifeboat \
 && chmod 0755 dist/src/cli/main.js bin/lifeboat \
 && ln -s /opt/lifeboat/bin/lifeboat-wal /usr/local/bin/lifeboat-wal
ENV NODE_ENV=production \
    LIFEBOAT_CONFIG=/etc/lifeboat/lifeboat.yaml \
    LIFEBOAT_HEALTH_URL=http://127.0.0.1:8080/health
USER 10001:10001
WORKDIR /var/lib/lifeboat
VOLUME ["/var/lib/lifeboat"]
EXPOSE 8080 9187
# The server answers /health on :8080; an agent (daemon) sets
# LIFEBOAT_HEALTH_URL=http://127.0.0.1:9187/health. No curl in the image: node fetches.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.LIFEBOAT_HEALTH_URL,{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["lifeboat"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
