# Entry points for people and CI; the build itself is meson (meson.build).
#
#   make demo    install what is needed, build, boot the small Linux guest to a shell
#   make check   install what is needed, build, run every test (also under ASan/UBSan)
#   make bench   build and print the benchmarks next to QEMU's figures
#
# Must run as root on Debian 12 for the package installation and /dev/kvm.

BUILD      ?= build
BUILD_ASAN ?= build-asan
MESON      ?= meson
NINJA      ?= ninja
SHELL      := /bin/bash

# Debian packages: build tools and libraries, the reference tools the tests
# compare against (QEMU, qemu-img, python3), and what the test kernel build needs.
DEB_PACKAGES = build-essential meson ninja-build pkg-config \
	libglib2.0-dev libseccomp-dev libcmocka-dev libxml2-dev libreadline-dev clang libclang-rt-14-dev \
	liburing-dev libzstd-dev zlib1g-dev libgnutls28-dev gnutls-bin \
	qemu-system-x86 qemu-utils python3 libvirt-clients python3-libvirt \
	linux-source-6.1 busybox-static cpio flex bison bc libelf-dev xz-utils \
	fio hyperfine iproute2 util-linux acpica-tools systemd

LINUX_DIR   = tests/guest/linux
INITRAMFS   = $(BUILD)/tests/guest/linux/initramfs.cpio

.PHONY: all deps build kernel demo check check-asan bench clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || \
			missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing:$$missing"; \
		apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	$(MESON) setup $(BUILD)

build: deps $(BUILD)/build.ninja
	$(NINJA) -C $(BUILD)

kernel: deps
	$(LINUX_DIR)/build-kernel.sh >/dev/null

# The guest runs under vireod (a private one, --root in /tmp), started and
# attached to with vireo (daemon/demo.sh).
demo: build kernel
	@kdir=$$($(LINUX_DIR)/build-kernel.sh) && \
	echo "Booting the test kernel through vireod; type 'poweroff' in the guest shell to end." && \
	daemon/demo.sh $(BUILD) $$kdir/vmlinux $(INITRAMFS) \
		"$$($(LINUX_DIR)/cmdline.sh vireo.test=shell)"

check: build kernel
	$(MESON) test -C $(BUILD) --print-errorlogs
	$(MAKE) check-asan

# Everything but the slow Linux boots, built with -fsanitize=address,undefined.
check-asan: deps
	[ -f $(BUILD_ASAN)/build.ninja ] || \
		$(MESON) setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
			-Dlinux_tests=disabled
	$(NINJA) -C $(BUILD_ASAN)
	$(MESON) test -C $(BUILD_ASAN) --setup sanitizers --print-errorlogs --no-suite slow

bench: build kernel
	/usr/bin/python3 tests/bench/bench.py --build $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)
