# cdr-to-redpanda container image.
#
#   docker build -t cdr-to-redpanda .
#   docker run --rm cdr-to-redpanda --help
#
# Stage 1 compiles the binary; librdkafka and libssh2 are built from the
# sources their crates bundle, against the system OpenSSL and zlib.
FROM rust:1.95-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY core core
COPY state state
COPY src src
COPY benches benches
COPY examples examples
RUN cargo build --release --locked --bin cdr-to-redpanda \
 && strip target/release/cdr-to-redpanda

# Stage 2: only what the binary links against at run time (OpenSSL, zlib
# from the base image, CA certificates for TLS to the brokers).
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/cdr-to-redpanda --shell /usr/sbin/nologin cdr \
 && mkdir -p /var/lib/cdr-to-redpanda \
 && chown cdr:cdr /var/lib/cdr-to-redpanda
COPY --from=builder /build/target/release/cdr-to-redpanda /usr/local/bin/cdr-to-redpanda
# The ledger (and the staging area for downloads) must outlive the container.
ENV CDR_LEDGER_DIR=/var/lib/cdr-to-redpanda
# /metrics, /healthz and /readyz; the HEALTHCHECK below needs them.
ENV METRICS_ADDR=0.0.0.0:9464
VOLUME /var/lib/cdr-to-redpanda
USER cdr
EXPOSE 9464
# No curl in this image: the binary probes itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["cdr-to-redpanda", "healthcheck", "--url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["cdr-to-redpanda"]
CMD ["run"]
