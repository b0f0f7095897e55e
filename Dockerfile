# syntax=docker/dockerfile:1
# Multi-stage build of a static ucprelay binary on a distroless, non-root base.
#   docker build --build-arg VERSION=v0.1.0 -t ucprelay:v0.1.0 .
# Run with a read-only root filesystem: nothing is written at run time.
ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/ucprelay/ucprelay/internal/buildinfo.Version=${VERSION}" \
      -o /out/ucprelay ./cmd/ucprelay

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="ucprelay" \
      org.opencontainers.image.description="Relays order-domain events from Kafka to UCP order webhooks as complete order snapshots" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/ucprelay /usr/local/bin/ucprelay
USER nonroot:nonroot
# The binary listens on loopback by default; in the container's own network namespace the
# probes and the scraper need the pod address.
ENV UCPRELAY_TELEMETRY__LISTEN=:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/ucprelay"]
CMD ["run", "--config", "/etc/ucprelay/config.yaml"]
