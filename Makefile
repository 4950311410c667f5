# vzfs: see README.md. Every target installs its own prerequisites.
CARGO ?= cargo
TEST_THREADS ?= 2

PREFIX ?= /usr
DESTDIR ?=
OCF_ROOT ?= /usr/lib/ocf
# The CentOS 6 toolset and oldkernel.c of the legacy profile (tests/src/legacy.rs).
SHARED ?= $(abspath $(CURDIR)/../shared)

.PHONY: all build release package install test demo bench prereqs fmt clean

all: build

prereqs:
	@sh scripts/install-prereqs

build:
	$(CARGO) build --workspace --bins

# scripts/static-bins links the shipped programs (vzfs-hook, vzfs-migrate,
# vzfs-create) statically (glibc static-pie, GNU ld, checked free of NSS) in
# place of the dynamic builds: they need nothing from the node's libc
# (OpenVZ 6 nodes: glibc 2.12).
release:
	$(CARGO) build --release --workspace --bins
	CARGO=$(CARGO) sh scripts/static-bins

# target/package/vzfs_VERSION_ARCH.deb and vzfs-VERSION-1.ARCH.rpm from the
# release binaries, with man pages and completions (scripts/build-packages;
# writes only under target/).
package: prereqs
	CARGO=$(CARGO) sh scripts/build-packages

# Installs what the packages hold (packaging/files.txt, deb layout) under
# $(DESTDIR)$(PREFIX): the release binaries (static), man pages,
# completions, and the OCF resource agent ocf:vzfs:container as the symlink
# $(DESTDIR)$(OCF_ROOT)/resource.d/vzfs/container -> $(PREFIX)/sbin/vzfs-hook.
# It does not link vzctl's action scripts: run `vzfs-hook install` afterwards.
install: release
	$(CARGO) build --locked -p vzfs-docgen
	rm -rf target/install-gen
	./target/debug/vzfs-docgen target/install-gen >/dev/null
	set -e; for b in vzfs-hook vzfs-migrate vzfs-create; do \
	    if [ -f target/install-gen/man/$$b.8 ]; then \
	        install -D -m 0755 target/release/$$b $(DESTDIR)$(PREFIX)/sbin/$$b; fi; done
	set -e; for p in target/install-gen/man/*.[0-9]; do sec=$${p##*.}; \
	    install -d -m 0755 $(DESTDIR)$(PREFIX)/share/man/man$$sec; \
	    gzip -9n < $$p > $(DESTDIR)$(PREFIX)/share/man/man$$sec/$${p##*/}.gz; \
	    chmod 0644 $(DESTDIR)$(PREFIX)/share/man/man$$sec/$${p##*/}.gz; done
	set -e; for f in target/install-gen/completions/bash/*; do \
	    install -D -m 0644 $$f $(DESTDIR)$(PREFIX)/share/bash-completion/completions/$${f##*/}; done
	set -e; for f in target/install-gen/completions/zsh/*; do \
	    install -D -m 0644 $$f $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/$${f##*/}; done
	set -e; for f in target/install-gen/completions/fish/*; do \
	    install -D -m 0644 $$f $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/$${f##*/}; done
	install -d -m 0755 $(DESTDIR)$(OCF_ROOT)/resource.d/vzfs
	ln -sfn $(PREFIX)/sbin/vzfs-hook $(DESTDIR)$(OCF_ROOT)/resource.d/vzfs/container
	@echo "installed under $(DESTDIR)$(PREFIX) and $(DESTDIR)$(OCF_ROOT); now run: vzfs-hook install"

# Unit tests, the hook's tests on real loop devices, the lab's tests and the
# end-to-end migration tests. Root is required (tests fail, not skip, without it;
# VZFS_SKIP_ROOT_TESTS=1 skips them and says how many). The package tests
# (tests/tests/packages.rs) check the packages `package` just built. The
# legacy profile (tests/tests/legacy.rs, and the hook's root tests a third
# time) runs the release builds as on an OpenVZ 6 node: ../shared's
# oldkernel (2.6.32 system calls) and CentOS 6 toolset.
test: prereqs build package
	VZFS_SHARED_DIR=$(SHARED) $(CARGO) test --workspace -- --test-threads=$(TEST_THREADS)
	@echo "== the hook's root tests again, against the static vzfs-hook the packages ship"
	VZFS_HOOK_BIN=$(CURDIR)/target/release/vzfs-hook $(CARGO) test -p vzfs-hook --test hook_root --test hook_adversary -- --test-threads=$(TEST_THREADS)
	@echo "== the hook's root tests a third time, as on an OpenVZ 6 node: under the system calls of Linux 2.6.32 with the CentOS 6 tools (scripts/legacy-hook)"
	SHARED=$(SHARED) sh scripts/legacy-hook
	VZFS_HOOK_BIN=$(CURDIR)/target/legacy/vzfs-hook VZFS_LEGACY_C6=$(SHARED)/legacy-c6 $(CARGO) test -p vzfs-hook --test hook_root --test hook_adversary -- --test-threads=$(TEST_THREADS)

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
