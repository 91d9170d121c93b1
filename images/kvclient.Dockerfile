# syntax=docker/dockerfile:1
# kvclient: Client for kvserver: the book's screen, a topology-following mode, one-shot commands and a load generator.
# Build from the repository root:
#   docker build -f images/kvclient.Dockerfile -t kvstore/kvclient:dev .
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
    cargo build --release --locked -p kvclient --bin kvclient \
 && install -D -m 0755 target/release/kvclient /out/kvclient

# glibc, libgcc and CA certificates, no shell; nonroot = uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kvclient" \
      org.opencontainers.image.description="Client for kvserver: the book's screen, a topology-following mode, one-shot commands and a load generator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.url="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kvstore-operator maintainers"
COPY --from=builder /out/kvclient /usr/local/bin/kvclient
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/kvclient"]
