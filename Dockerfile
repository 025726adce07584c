# syntax=docker/dockerfile:1
# The `hub` binary: built in a Rust image, run in a slim Debian image as a
# non-root user. Checked by tests/it/compose_file.rs (no Docker engine
# runs on the development machines).

FROM rust:1.89-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p api --bin hub \
    && cp target/release/hub /usr/local/bin/hub

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /home/hub --shell /usr/sbin/nologin hub
COPY --from=builder /usr/local/bin/hub /usr/local/bin/hub
USER hub
ENV HUB_BIND=0.0.0.0:9001
EXPOSE 9001
ENTRYPOINT ["hub"]
CMD ["serve"]
