# The bidask server. Build: docker build -t bidask .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p bidask-server \
 && cp target/release/bidask /usr/local/bin/bidask

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --create-home --home-dir /var/lib/bidask bidask
COPY --from=build /usr/local/bin/bidask /usr/local/bin/bidask
USER bidask
WORKDIR /var/lib/bidask
# The embedded SQLite file and its generated token secret live here when
# no DATABASE_URL is given: a volume keeps them past the container.
VOLUME /var/lib/bidask
ENV BIDASK_LISTEN=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=10 --start-period=60s CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["bidask"]
CMD ["serve"]
