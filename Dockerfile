# Multi-stage image of chatd on Debian 12. Every step here is one that CI
# runs too: scripts/setup installs, make builds.
FROM debian:bookworm-slim AS build
WORKDIR /src
COPY . .
RUN scripts/setup && make -j"$(nproc)" build/chatd web

FROM debian:bookworm-slim
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libh2o-evloop0.13 libjansson4 libssl3 libwslay1 zlib1g libhiredis0.14 libmaxminddb0 \
      librabbitmq4 libsqlite3-0 libmongoc-1.0-0 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /app --shell /usr/sbin/nologin nearchat \
 && mkdir -p /app/var && chown nearchat /app/var
WORKDIR /app
COPY --from=build /src/build/chatd /app/chatd
COPY --from=build /src/build/web /app/web
USER nearchat
EXPOSE 8080
CMD ["/app/chatd"]
