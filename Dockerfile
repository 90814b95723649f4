# syntax=docker/dockerfile:1
# otpd in a container (docs/OPERATIONS.md, "Packaging"):
#   docker build -t otpd .
#   docker run -d -p 8080:8080 -v otpd-data:/var/lib/otpd otpd
# Configuration: mount a file and name it (-v ./otpd.toml:/etc/otpd/otpd.toml:ro
# -e OTPD_CONFIG=/etc/otpd/otpd.toml), or set OTPD_* variables.

# The toolchain .ci/run builds and tests with; the workspace needs 1.88 or newer.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep the registry and the build between image builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p otpd \
    && install -D -m 0755 target/release/otpd /out/otpd

FROM debian:bookworm-slim
# curl, for the health check, is all otpd needs beside the base: its HTTP and
# SMTP clients carry Mozilla's roots, so no ca-certificates. Unpinned: it
# moves with Debian's security updates, as the slim base does. The user has a
# fixed numeric id, so orchestrators can check it is not root.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 otpd \
    && useradd --system --uid 10001 --gid otpd --home-dir /var/lib/otpd --shell /usr/sbin/nologin otpd \
    && install -d -m 0700 -o otpd -g otpd /var/lib/otpd \
    && install -d -m 0755 /etc/otpd
COPY --from=build /out/otpd /usr/local/bin/otpd
USER 10001:10001
WORKDIR /var/lib/otpd
VOLUME ["/var/lib/otpd"]
# Listen on every interface inside the container; the port is published, or
# not, by whoever runs it. The health check reads the port from
# OTPD_OPS_LISTEN when it is set (health is only there then), else from
# OTPD_LISTEN, and tries https:// when http:// fails (server.tls on; the
# certificate is not checked: it only asks whether this process answers).
ENV OTPD_LISTEN=0.0.0.0:8080 \
    OTPD_DATA_DIR=/var/lib/otpd
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["sh", "-c", "a=${OTPD_OPS_LISTEN:-$OTPD_LISTEN}; u=127.0.0.1:${a##*:}/livez; curl -fsS -o /dev/null \"http://$u\" || curl -fsSk -o /dev/null \"https://$u\" || exit 1"]
# SIGTERM drains requests in flight and flushes the store (exit 0); give it
# longer than server.shutdown_grace_ms: docker stop --time 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/otpd"]
CMD ["serve"]
