# syntax=docker/dockerfile:1
# mcp-kernel as a container image (see the README's "Deploy" and deploy/README.md).
#
#   docker build -t mcp-kernel:0.1.0 .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 \
#     -v "$PWD/auth.json:/etc/mcp-kernel/auth.json:ro" \
#     -v "$PWD/servers.json:/etc/mcp-kernel/servers.json:ro" mcp-kernel:0.1.0
#
# The binary writes nothing to disk (logs go to stderr; workers are child processes of the same
# binary), so the root filesystem can be read-only. /tmp needs to be writable (an emptyDir or
# tmpfs) only for upstream servers: `npx` keeps its cache under $HOME=/tmp/home, and
# server-memory writes its MEMORY_FILE_PATH.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
# The whole workspace (Cargo needs every member, and vendor/ holds the patched Boa crates);
# .dockerignore keeps target/ and node_modules out of the context.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin mcp-kernel \
    && install -D -m 0755 target/release/mcp-kernel /out/mcp-kernel

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# Node.js and npm (Debian's packages; Node 20 on trixie) are here only for upstream MCP
# servers that are npm packages: the README's filesystem and memory servers are installed
# globally at these pinned versions, so servers.json can start them as `mcp-server-filesystem`
# and `mcp-server-memory` with no network access at run time (`npx -y pkg@version` works too,
# but downloads the package on every start: it needs egress to the npm registry). Build with
# --build-arg NPM_SERVERS= to install none.
ARG NPM_SERVERS="@modelcontextprotocol/server-filesystem@2026.8.31 @modelcontextprotocol/server-memory@2026.8.31"
# Versions come from the Debian release's archive (security updates included), not pinned.
# hadolint ignore=DL3008,DL3016
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini nodejs npm \
    && if [ -n "$NPM_SERVERS" ]; then \
        npm install --global --no-audit --no-fund --omit=dev $NPM_SERVERS \
        && npm cache clean --force; \
    fi \
    && rm -rf /var/lib/apt/lists/* /root/.npm \
    && groupadd --system --gid 10001 mcp-kernel \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /tmp/home \
        --shell /usr/sbin/nologin mcp-kernel \
    && install -d -m 0755 /etc/mcp-kernel

COPY --from=build /out/mcp-kernel /usr/local/bin/mcp-kernel

# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 10001:10001
ENV HOME=/tmp/home
EXPOSE 8080

# Liveness without curl: one HTTP request over bash's /dev/tcp, healthy on a 200.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == HTTP/1.?' 200 '* ]]"]

# tini is PID 1: it forwards SIGTERM to mcp-kernel alone (no -g: the server drains and then
# stops its own workers and upstream servers) and reaps orphans such as upstreams' children.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/mcp-kernel"]
CMD ["serve", "--http", "0.0.0.0:8080", "--auth-file", "/etc/mcp-kernel/auth.json", "--config", "/etc/mcp-kernel/servers.json"]
