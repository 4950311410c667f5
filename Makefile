# vzfs: see README.md. Every target installs its own prerequisites.
CARGO ?= cargo
TEST_THREADS ?= 2

.PHONY: all build release package test demo bench prereqs fmt clean

all: build

prereqs:
	@sh scripts/install-prereqs

build:
	$(CARGO) build --workspace --bins

# The hook is exec'd twice per container start/stop: scripts/static-hook
# links it statically (glibc static-pie) in place of the dynamic build.
release:
	$(CARGO) build --release --workspace --bins
	CARGO=$(CARGO) sh scripts/static-hook

# target/package/vzfs_VERSION_ARCH.deb and vzfs-VERSION-1.ARCH.rpm from the
# release binaries, with man pages and completions (scripts/build-packages;
# writes only under target/).
package: prereqs
	CARGO=$(CARGO) sh scripts/build-packages

# Unit tests, the hook's tests on real loop devices, the lab's tests and the
# end-to-end migration tests. Root is required (tests fail, not skip, without it;
# VZFS_SKIP_ROOT_TESTS=1 skips them and says how many). The package tests
# (tests/tests/packages.rs) check the packages `package` just built.
test: prereqs build package
	$(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)
	@echo "== the hook's root tests again, against the static vzfs-hook the packages ship"
	VZFS_HOOK_BIN=$(CURDIR)/target/release/vzfs-hook $(CARGO) test -p vzfs-hook --test hook_root --test hook_adversary -- --test-threads=$(TEST_THREADS)

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
