# syntax=docker/dockerfile:1
# kvserver: The book's key/value server, made durable: one per shard pod of a KVStore.
# Build from the repository root:
#   docker build -f images/kvserver.Dockerfile -t kvstore/kvserver:dev .
# tests/images/build.sh makes the equivalent image without a daemon (same binary path, user
# and entrypoint; its base is assembled from the same Debian 12 libc6/libgcc-s1/ca-certificates).
ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS builder
# Strip symbols: the kvserver image has a 25 MB budget.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src
COPY . .
# The cache mounts keep crates and build outputs between builds; the binary is copied out of
# the target cache in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p kvserver --bin kvserver \
 && install -D -m 0755 target/release/kvserver /out/kvserver

# glibc, libgcc and CA certificates, no shell; nonroot = uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kvserver" \
      org.opencontainers.image.description="The book's key/value server, made durable: one per shard pod of a KVStore" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.url="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kvstore-operator maintainers"
COPY --from=builder /out/kvserver /usr/local/bin/kvserver
USER 65532:65532
EXPOSE 80 8081
ENTRYPOINT ["/usr/local/bin/kvserver"]
