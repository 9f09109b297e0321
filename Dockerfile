# syntax=docker/dockerfile:1
# Builds both binaries, static and stamped with their version, into one small
# non-root image. docker-compose.yml runs the simulator and the aggregator
# from it:
#
#   docker build -t fabric-telemetry .
#   docker run --rm -p 8080:8080 fabric-telemetry --demo
#
# VERSION, REVISION, BRANCH and BUILD_DATE stamp prometheus/common/version
# (--version, fabric_aggregator_build_info); docker compose build passes them
# through from the environment when set.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first, so a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
ARG BRANCH=unknown
ARG BUILD_DATE=unknown
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -o /out/ \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION} \
        -X github.com/prometheus/common/version.Branch=${BRANCH} \
        -X github.com/prometheus/common/version.BuildUser=docker \
        -X github.com/prometheus/common/version.BuildDate=${BUILD_DATE}" \
      ./cmd/telemetry-aggregator ./cmd/telemetry-simulator

# Static binaries need no libc: distroless static has CA certificates,
# /etc/passwd and tzdata, and nothing else (no shell).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/telemetry-aggregator /out/telemetry-simulator /usr/local/bin/
# nobody: the binaries write nothing and listen on unprivileged ports.
USER 65534:65534
EXPOSE 8080 9001
ENTRYPOINT ["/usr/local/bin/telemetry-aggregator"]
CMD ["--web.listen-address=:8080"]
