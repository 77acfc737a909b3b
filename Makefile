# strata: static binaries and the container image.
#   make static   static strata-csi, strata-flex (what the image ships) and kubectl-strata (the
#                 kubectl plugin: copy it onto PATH) in target/static/
#   make image    docker build -t $(IMAGE):$(VERSION) .
#   make check-static   make static, then check that the Dockerfile's COPY sources exist and are static

IMAGE ?= ghcr.io/strata-csi/strata
VERSION ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# glibc's static runtime (crt-static). The flag applies to --target only, so build scripts and
# proc-macros stay dynamic, as they must.
TARGET ?= $(shell uname -m)-unknown-linux-gnu
CARGO ?= cargo
STATIC_DIR := target/static
BINARIES := strata-csi strata-flex kubectl-strata

.PHONY: static image check-static

static:
	$(CARGO) build --release --locked --bins --target $(TARGET) \
		--config 'target.$(TARGET).rustflags=["-C", "target-feature=+crt-static"]'
	mkdir -p $(STATIC_DIR)
	for b in $(BINARIES); do install -m 0755 target/$(TARGET)/release/$$b $(STATIC_DIR)/$$b; done

image:
	docker build --build-arg STRATA_COMMIT=$$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown) -t $(IMAGE):$(VERSION) .

check-static:
	scripts/check-image-build
