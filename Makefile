# vzfs: see README.md. Every target installs its own prerequisites.
CARGO ?= cargo
TEST_THREADS ?= 2

.PHONY: all build release test demo bench prereqs fmt clean

all: build

prereqs:
	@sh scripts/install-prereqs

build:
	$(CARGO) build --workspace --bins

# The hook is exec'd twice per container start/stop: it is linked statically
# (glibc static-pie: no dynamic loader, no shared libraries at start-up). The
# explicit --target keeps the static flag off build scripts and proc-macros;
# the result replaces the dynamic build in target/release.
HOST_TARGET := $(shell rustc -vV | sed -n 's/^host: //p')
release:
	$(CARGO) build --release --workspace --bins
	RUSTFLAGS="-C target-feature=+crt-static" $(CARGO) build --release -p vzfs-hook --bin vzfs-hook \
		--target $(HOST_TARGET) --target-dir target/static
	install -m 755 target/static/$(HOST_TARGET)/release/vzfs-hook target/release/vzfs-hook

# Unit tests, the hook's tests on real loop devices, the lab's tests and the
# end-to-end migration tests. Root is required (tests fail, not skip, without it;
# VZFS_SKIP_ROOT_TESTS=1 skips them and says how many).
test: prereqs build
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)

# The main job, in the two-node lab: every step printed in words.
demo: prereqs
	sh scripts/demo

# Speed goals, measured side by side in one run and printed as ratios.
bench: prereqs release
	./target/release/vzfs-bench

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
