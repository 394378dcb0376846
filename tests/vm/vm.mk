# The .deb and the VM proof; included by the top-level Makefile.
.PHONY: deb vm-deps vm-test demo bench-vm bench-vm-io

DEB_LINTIAN_ALLOW := initial-upload-closes-no-bugs

vm-deps:
	bash tests/vm/deps.sh

# Release binaries for the whole workspace, then the package; lintian must be clean.
# DEB_TARGET (a Rust target, e.g. aarch64-unknown-linux-gnu) builds another architecture's
# package: its variant in packaging/Cargo.toml has the PAM module in that multiarch directory.
DEB_TARGET ?=
DEB_CROSS := $(if $(DEB_TARGET),--target $(DEB_TARGET))
deb: vm-deps
	cargo build --release --workspace $(DEB_CROSS)
	mkdir -p packaging/completions
	target/release/containctl completions bash >packaging/completions/containctl
	target/release/containctl completions zsh >packaging/completions/_containctl
	target/release/containctl completions fish >packaging/completions/containctl.fish
	rm -f target/debian/contain_*.deb
	mkdir -p target/debian
	cargo deb -p contain --no-build $(if $(DEB_TARGET),$(DEB_CROSS) --variant $$(packaging/deb-arch.sh $(DEB_TARGET)) -o target/debian/)
	lintian --fail-on error,warning --suppress-tags $(DEB_LINTIAN_ALLOW) target/debian/contain_*.deb
	dpkg-deb -c target/debian/contain_*.deb >target/debian/contents.txt
	for f in bash-completion/completions/containctl zsh/vendor-completions/_containctl \
		fish/vendor_completions.d/containctl.fish; do \
		grep -q "usr/share/$$f$$" target/debian/contents.txt || \
			{ echo "the .deb lacks usr/share/$$f"; exit 1; }; \
	done

vm-test: deb
	bash tests/vm/run.sh bookworm trixie

demo: deb
	bash tests/vm/run.sh --demo bookworm

# Containment with and without contain, side by side in one VM (a benchmark: not in make test).
BENCH_VM_SUITE ?= bookworm
bench-vm: deb
	bash tests/vm/bench/containment.sh $(BENCH_VM_SUITE)

# IO storms on a QEMU-throttled disk: root's logins and a system.slice read under each IO
# setting, side by side in one VM (a benchmark: not in make test).
bench-vm-io: deb
	bash tests/vm/bench/io.sh $(BENCH_VM_SUITE)
