# syntax=docker/dockerfile:1
# civitai-meta in a small image: Alpine (musl), the C++ runtime that Bun's musl build links,
# a non-root user, and the standalone binary. Nothing is compiled here: the build context is
# the musl binaries in dist/ and nothing else (see .dockerignore and docs/container.md):
#
#   bun scripts/build-binary.ts --targets linux-x64-musl,linux-arm64-musl
#   docker buildx build --platform linux/amd64,linux/arm64 -t civitai-meta .

ARG ALPINE_VERSION=3.22

# Picks the binary for the image's architecture. It runs on the build machine's own platform, so
# a multi-arch build needs no emulation for this step.
FROM --platform=$BUILDPLATFORM alpine:${ALPINE_VERSION} AS pick
ARG TARGETARCH
COPY dist/civitai-meta-linux-*-musl /tmp/bin/
RUN case "${TARGETARCH}" in \
      amd64) arch=x64 ;; \
      arm64) arch=arm64 ;; \
      *) echo "civitai-meta ships no musl binary for ${TARGETARCH}" >&2; exit 1 ;; \
    esac \
 && test -f "/tmp/bin/civitai-meta-linux-${arch}-musl" \
      || { echo "dist/civitai-meta-linux-${arch}-musl is missing: build it first (see the comment at the top)" >&2; exit 1; } \
 && install -m 0755 "/tmp/bin/civitai-meta-linux-${arch}-musl" /civitai-meta

FROM alpine:${ALPINE_VERSION}
# Bun's musl runtime needs libstdc++.so.6 (and libgcc_s, which it pulls in); Alpine's base has neither.
# Versions follow the Alpine branch pinned above: pinning each package breaks the build at every point release.
# hadolint ignore=DL3018
RUN apk add --no-cache libstdc++ libgcc \
 && addgroup -S -g 10001 civitai \
 && adduser -S -D -u 10001 -G civitai -h /home/civitai civitai \
 && mkdir -p /cache /config/civitai-meta /models /work \
 && chown -R civitai:civitai /cache /config /models /work
COPY --from=pick /civitai-meta /usr/local/bin/civitai-meta

# Hash and metadata caches in /cache; the config file at /config/civitai-meta/config.json.
# Both are volumes, so a cache survives the container and a config (which may hold the API key)
# can be mounted read-only. Prefer passing the key as CIVITAI_API_KEY (docker run -e).
# /models (not a volume: mount your own there) is owned by the user, so a fresh named volume
# mounted on it is writable for `download --dest /models`.
ENV CIVITAI_META_CACHE_DIR=/cache \
    XDG_CONFIG_HOME=/config \
    HOME=/home/civitai
VOLUME ["/cache", "/config"]
WORKDIR /work
USER civitai:civitai
ENTRYPOINT ["/usr/local/bin/civitai-meta"]
CMD ["--help"]
