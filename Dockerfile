# syntax=docker/dockerfile:1
# cutover's two binaries, `indexer` and `backfill`, in one image.
#
#   docker build -t cutover .
#   docker run --rm cutover indexer --help
#   docker run --rm cutover backfill --help
#
# Stage 1 builds with the Rust toolchain plus cmake (librdkafka is compiled from source by
# rdkafka's `cmake-build` feature; the official Rust image already carries gcc, make,
# pkg-config, libssl-dev and zlib1g-dev). Stage 2 is a slim Debian with only the shared
# libraries the binaries link (libssl3 and zlib for the indexer's librdkafka).

ARG RUST_VERSION=1
FROM rust:${RUST_VERSION}-bookworm AS builder
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cutover-indexer -p cutover-backfill \
 && mkdir -p /out \
 && cp target/release/indexer target/release/backfill /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libssl3 zlib1g \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cutover --create-home cutover
COPY --from=builder /out/indexer /out/backfill /usr/local/bin/
USER cutover
WORKDIR /var/lib/cutover
# 9464: indexer /metrics, 9465: backfill /metrics (both bind 127.0.0.1 by default: pass
# --metrics-addr 0.0.0.0:PORT to expose them).
EXPOSE 9464 9465
CMD ["indexer", "--help"]
