# strata's image: strata-csi (the CSI driver), strata-flex (the FlexVolume driver, installed onto
# the nodes by deploy/flex) and its installer, on a small Debian with the filesystem tools the
# backends run. Build: `make image` (docker build -t ghcr.io/strata-csi/strata:<version> .).

# Builder: the same `make static` a developer runs; it leaves static binaries in target/static/.
# The proto is compiled in Rust (protox): the builder needs no protoc.
FROM rust:1.95.0-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs Makefile ./
COPY proto ./proto
COPY src ./src
COPY benches ./benches
# The commit the strata_build_info metric reports (the build context has no .git); build.rs
# reads it from the environment, where RUN sees every ARG.
ARG STRATA_COMMIT=unknown
RUN make static

# Runtime: the tools strata runs by absolute path (blkid, mkfs.ext4, resize2fs, mkfs.xfs,
# xfs_growfs, btrfs, cp); the binaries themselves need no shared library.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends e2fsprogs xfsprogs btrfs-progs util-linux coreutils \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /src/target/static/strata-csi /usr/local/bin/strata-csi
COPY --from=builder /src/target/static/strata-flex /usr/local/bin/strata-flex
COPY deploy/flex/install.sh /usr/local/bin/strata-flex-install
LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Node-local storage for Kubernetes: CSI and FlexVolume drivers" \
      org.opencontainers.image.licenses="Apache-2.0"
CMD ["/usr/local/bin/strata-csi", "--help"]
