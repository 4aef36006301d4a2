# cdr-to-redpanda container image.
#
#   docker build -t cdr-to-redpanda .
#   docker run --rm cdr-to-redpanda --help
#
# Stage 1 compiles the binary; librdkafka and libssh2 are built from the
# sources their crates bundle, against the system OpenSSL and zlib. Debian
# bookworm in both stages, so the libraries match.
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
 && strip target/release/cdr-to-redpanda \
 && mkdir -p /out/ledger

# Stage 2, `runtime`: a distroless base (glibc, libgcc, OpenSSL, CA
# certificates, a `nonroot` user 65532, no shell, no package manager) plus
# what else the binary links: zlib. scripts/image.sh builds this stage on the
# same set of files assembled from Debian's packages where the base cannot be
# pulled, so every line below must stay a FROM, COPY, ENV, VOLUME, USER,
# EXPOSE, HEALTHCHECK, ENTRYPOINT or CMD (no RUN: there is no shell).
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /lib/x86_64-linux-gnu/libz.so.1 /lib/x86_64-linux-gnu/libz.so.1
COPY --from=builder /build/target/release/cdr-to-redpanda /usr/local/bin/cdr-to-redpanda
# The ledger (and the staging area for downloads) must outlive the container:
# a volume, owned by the user the service runs as.
COPY --from=builder --chown=65532:65532 /out/ledger /var/lib/cdr-to-redpanda
ENV CDR_LEDGER_DIR=/var/lib/cdr-to-redpanda
# /metrics, /healthz and /readyz; the HEALTHCHECK below needs them.
ENV METRICS_ADDR=0.0.0.0:9464
VOLUME /var/lib/cdr-to-redpanda
USER 65532:65532
EXPOSE 9464
# No curl in this image: the binary probes itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["cdr-to-redpanda", "healthcheck", "--url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["cdr-to-redpanda"]
CMD ["run"]
