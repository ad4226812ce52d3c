# SPDX-License-Identifier: GPL-2.0
#
# vmmemctl - out-of-tree build, install and the project's own targets.
#
#   make                 build against the running kernel
#   make KDIR=<dir>      build against another kernel's build tree
#   make install         install to the kernel's extra/ and run depmod
#   make dkms-install    copy the sources to /usr/src, dkms add/build/install
#   make dkms-uninstall  dkms remove (every kernel) and delete /usr/src copy
#   make clean
#   make demo            boot a VMware-looking guest and watch the balloon
#   make check           every test (static checks and guest scenarios), on
#                        every kernel of the matrix (Debian's 6.1, 6.12, 7.x)
#       KERNELS=6.1      only these kernels ('6.12,7' for two)
#       TESTS=reset      only tests whose name contains one of these words
#       REPEAT=N         each selected test N times
#   make bench           vmmemctl against the in-tree vmw_balloon (KERNEL=<id>)

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PWD := $(shell pwd)

# One source of truth for the version: vmmemctl.h. dkms.conf must agree.
VERSION := $(shell sed -n 's/.*define VMMEMCTL_VERSION[^"]*"\([^"]*\)".*/\1/p' $(PWD)/vmmemctl.h)
DKMS_SRC := /usr/src/vmmemctl-$(VERSION)
DKMS_FILES := Kbuild Makefile dkms.conf $(filter-out %.mod.c,$(wildcard *.c)) $(wildcard *.h)

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(PWD) modules

install: modules
	$(MAKE) -C $(KDIR) M=$(PWD) INSTALL_MOD_DIR=extra modules_install
	depmod -a $(KVER)

clean:
	$(MAKE) -C $(KDIR) M=$(PWD) clean

dkms-check:
	@test -n "$(VERSION)" || { echo "no VMMEMCTL_VERSION in vmmemctl.h"; exit 1; }
	@grep -qx 'PACKAGE_VERSION="$(VERSION)"' dkms.conf || \
		{ echo "dkms.conf: PACKAGE_VERSION is not $(VERSION) (vmmemctl.h)"; exit 1; }

dkms-install: dkms-check dkms-uninstall
	mkdir -p $(DKMS_SRC)
	cp $(DKMS_FILES) $(DKMS_SRC)/
	dkms add vmmemctl/$(VERSION)
	dkms build vmmemctl/$(VERSION) -k $(KVER)
	dkms install vmmemctl/$(VERSION) -k $(KVER)

dkms-uninstall:
	if test -d /var/lib/dkms/vmmemctl/$(VERSION); then \
		dkms remove vmmemctl/$(VERSION) --all; fi
	rm -rf $(DKMS_SRC)

export KERNELS TESTS REPEAT KERNEL

demo:
	bash tests/demo.sh

check:
	bash tests/check.sh

bench:
	bash tests/bench.sh

.PHONY: all modules install clean dkms-check dkms-install dkms-uninstall \
	demo check bench
