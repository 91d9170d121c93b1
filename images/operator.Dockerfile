# syntax=docker/dockerfile:1
# kvstore-operator: Kubernetes operator for KVStore: a StatefulSet of kvserver shards with automatic, lossless rebalancing.
# Build from the repository root:
#   docker build -f images/operator.Dockerfile -t kvstore/operator:dev .
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
    cargo build --release --locked -p operator --bin kvstore-operator \
 && install -D -m 0755 target/release/kvstore-operator /out/kvstore-operator

# glibc, libgcc and CA certificates, no shell; nonroot = uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kvstore-operator" \
      org.opencontainers.image.description="Kubernetes operator for KVStore: a StatefulSet of kvserver shards with automatic, lossless rebalancing" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.url="https://github.com/kvstore-dev/kvstore-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="kvstore-operator maintainers"
COPY --from=builder /out/kvstore-operator /usr/local/bin/kvstore-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/kvstore-operator"]
