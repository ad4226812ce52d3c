# SPDX-License-Identifier: GPL-2.0
#
# vmmemctl - out-of-tree build, install and the project's own targets.
#
#   make                 build against the running kernel
#   make KDIR=<dir>      build against another kernel's build tree
#   make install         install to the kernel's extra/ and run depmod
#   make dkms-install    copy the sources to /usr/src, dkms add/build/install
#   make dkms-uninstall  dkms remove (every kernel) and delete /usr/src copy
#   make deb             dist/vmmemctl-dkms_<version>_all.deb (debhelper, dh-dkms;
#                        installs those build dependencies with apt-get if missing)
#   make dkms-check      vmmemctl.h, dkms.conf and debian/changelog agree on the version
#   make dkms-files      list what DKMS and the .deb ship
#   make clean
#   make demo            boot a VMware-looking guest and watch the balloon
#   make check           every test (static checks and guest scenarios), on
#                        every kernel of the matrix (Debian's 6.1, 6.12, 7.x),
#                        then every kernel test again on the debug kernel
#       KERNELS=6.1      only these kernels ('6.12,7' for two)
#       TESTS=reset      only tests whose name contains one of these words
#       REPEAT=N         each selected test N times
#   make check-debug     every kernel test on a debug build of Debian's 6.1 (KASAN,
#                        lockdep, kmemleak, UBSAN, fault injection, ...); the
#                        kernel is built once per machine (tests/debug_kernel.sh)
#       TESTS=, REPEAT=  as for check
#   make check-kcsan     the same on a KCSAN build (data races through the module)
#   make bench           vmmemctl against the in-tree vmw_balloon (KERNEL=<id>)

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PWD := $(shell pwd)

# One source of truth for the version: vmmemctl.h. dkms.conf and debian/changelog
# must agree (dkms-check, run by dkms-install and deb).
VERSION := $(shell sed -n 's/.*define VMMEMCTL_VERSION[^"]*"\([^"]*\)".*/\1/p' $(PWD)/vmmemctl.h)
DKMS_SRC := /usr/src/vmmemctl-$(VERSION)

# What DKMS and the .deb ship (paths relative to the tree, subfolders such as
# compat/ included): the whole tree but tests/, Documentation/, debian/, dist/,
# dot-files and *.md. In a git checkout: the tracked and new files git does not
# ignore (so no build product or generated header); elsewhere (a copy, the
# .deb's staging folder, or git not usable): every file but the usual kbuild
# products.
DKMS_PRUNE := -path ./tests -o -path ./Documentation -o -path ./debian -o -path ./dist -o -name '.?*'
DKMS_PRODUCTS := '*.o' '*.ko' '*.ko.*' '*.mod' '*.mod.c' '*.o.d' '*.a' '*.cmd' '*.md' \
	Module.symvers modules.order
DKMS_FILES = $(sort $(or $(if $(wildcard .git),$(DKMS_GIT_FILES)),$(DKMS_FIND_FILES)))
DKMS_GIT_FILES = $(wildcard $(filter-out tests/% Documentation/% debian/% dist/% .% %/.% %.md,\
	$(shell git ls-files -co --exclude-standard 2>/dev/null)))
DKMS_FIND_FILES = $(shell find . \( $(DKMS_PRUNE) \) -prune -o -type f \
	$(foreach p,$(DKMS_PRODUCTS),! -name $(p)) -print | sed 's|^\./||' | LC_ALL=C sort)

DEB_OUT := dist
DEB := $(DEB_OUT)/vmmemctl-dkms_$(VERSION)_all.deb
DEB_STAGE := $(DEB_OUT)/build/vmmemctl-$(VERSION)
DEB_BUILD_DEPS := debhelper dh-dkms dpkg-dev

all: modules

# Kernel feature probes. Each compat/probes/<name>.c is a tiny compile test:
# it builds against the target kernel's headers with the kernel's own flags,
# or it does not. All of them are compiled by one kbuild sub-make (-k, in
# parallel, its output in .compat_probes/build.log), and every object that
# came out becomes a line "#define VMB_HAVE_<NAME> 1" in compat_probes.h,
# next to the sources (generated, never committed; compat.h includes it).
# The probes run again when KDIR, the kernel release found there, its
# configuration or a probe changes. Two are required: "baseline" (a module
# compiles at all) and "maple_tree" (the kernel is 6.1 or newer); without
# them the build stops with one line.
VMB_PROBE_SRC := $(PWD)/compat/probes
VMB_PROBE_DIR := $(PWD)/.compat_probes
VMB_PROBE_HDR := $(PWD)/compat_probes.h
VMB_PROBES := $(sort $(basename $(notdir $(wildcard $(VMB_PROBE_SRC)/*.c))))
VMB_PROBE_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
VMB_PROBE_KEY := $(strip $(KDIR) $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' \
	$(KDIR)/include/generated/utsrelease.h 2>/dev/null))

# Only the goals that compile the module probe the kernel.
ifneq ($(filter all modules install,$(or $(MAKECMDGOALS),all)),)
ifeq ($(wildcard $(KDIR)/include/generated/autoconf.h),)
$(error vmmemctl: no configured kernel build tree at KDIR=$(KDIR); install the kernel headers or pass KDIR=)
endif
# make remakes the results first if they are stale, then reads them anew.
-include $(VMB_PROBE_DIR)/results.mk
ifeq ($(VMB_PROBED),$(VMB_PROBE_KEY))
ifeq ($(filter baseline,$(VMB_PROBES_OK)),)
$(error vmmemctl: cannot compile a module against KDIR=$(KDIR); see $(VMB_PROBE_DIR)/build.log)
endif
ifeq ($(filter maple_tree,$(VMB_PROBES_OK)),)
$(error vmmemctl: the kernel in KDIR=$(KDIR) is older than Linux 6.1, the oldest one vmmemctl supports)
endif
endif
endif

# The key changes when KDIR or the kernel release there does.
$(VMB_PROBE_DIR)/key: FORCE
	@mkdir -p $(@D)
	@echo '$(VMB_PROBE_KEY)' | cmp -s - $@ || echo '$(VMB_PROBE_KEY)' > $@

$(VMB_PROBE_DIR)/results.mk: $(VMB_PROBE_DIR)/key $(wildcard $(VMB_PROBE_SRC)/*) \
		$(firstword $(MAKEFILE_LIST)) \
		$(wildcard $(KDIR)/include/generated/autoconf.h) \
		$(if $(wildcard $(VMB_PROBE_HDR)),,FORCE)
	@echo '  PROBE   $(KDIR) ($(words $(VMB_PROBES)) probes)'
	@rm -rf $(VMB_PROBE_DIR)/build && mkdir -p $(VMB_PROBE_DIR)/build
	@cp $(VMB_PROBE_SRC)/*.[ch] $(VMB_PROBE_DIR)/build/
	@echo 'obj-m := $(VMB_PROBES:=.o)' > $(VMB_PROBE_DIR)/build/Kbuild
	@$(MAKE) -C $(KDIR) M=$(VMB_PROBE_DIR)/build -k W= C= \
		$(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(VMB_PROBE_JOBS)) \
		$(VMB_PROBES:=.o) > $(VMB_PROBE_DIR)/build.log 2>&1 || :
	@set -e; cd $(VMB_PROBE_DIR)/build; \
	{ echo '/* Generated by the feature probes of compat/probes/ for $(VMB_PROBE_KEY). Do not edit. */'; \
	  echo '#ifndef VMMEMCTL_COMPAT_PROBES_H'; \
	  echo '#define VMMEMCTL_COMPAT_PROBES_H'; \
	  echo '#define VMB_PROBED_RELEASE "$(lastword $(VMB_PROBE_KEY))"'; \
	  for p in $(VMB_PROBES); do \
		n=VMB_HAVE_$$(echo $$p | tr a-z A-Z); \
		if test -f $$p.o; then echo "#define $$n 1"; \
		else echo "/* $$n is not set */"; fi; \
	  done; \
	  echo '#endif'; } > $(VMB_PROBE_HDR).new; \
	cmp -s $(VMB_PROBE_HDR).new $(VMB_PROBE_HDR) || mv $(VMB_PROBE_HDR).new $(VMB_PROBE_HDR); \
	rm -f $(VMB_PROBE_HDR).new; \
	{ echo 'VMB_PROBED := $(VMB_PROBE_KEY)'; \
	  echo "VMB_PROBES_OK := $$(for p in $(VMB_PROBES); do test -f $$p.o && echo $$p; done | tr '\n' ' ')"; \
	} > $@; \
	rm -rf $(VMB_PROBE_DIR)/build

vmb-probes-clean:
	rm -rf $(VMB_PROBE_DIR) $(VMB_PROBE_HDR) $(VMB_PROBE_HDR).new

modules: $(VMB_PROBE_DIR)/results.mk
	$(MAKE) -C $(KDIR) M=$(PWD) modules

install: modules
	$(MAKE) -C $(KDIR) M=$(PWD) INSTALL_MOD_DIR=extra modules_install
	depmod -a $(KVER)

clean: vmb-probes-clean
	$(MAKE) -C $(KDIR) M=$(PWD) clean

dkms-check:
	@test -n "$(VERSION)" || { echo "no VMMEMCTL_VERSION in vmmemctl.h"; exit 1; }
	@grep -qx 'PACKAGE_VERSION="$(VERSION)"' dkms.conf || \
		{ echo "dkms.conf: PACKAGE_VERSION is not $(VERSION) (vmmemctl.h)"; exit 1; }
	@test ! -f debian/changelog || head -n1 debian/changelog | grep -q '^vmmemctl ($(VERSION))' || \
		{ echo "debian/changelog: newest entry is not $(VERSION) (vmmemctl.h)"; exit 1; }

dkms-files:
	@printf '%s\n' $(DKMS_FILES)

# Copy DKMS_FILES to DKMS_SRC, keeping subfolders (debian/rules uses it too).
dkms-copy:
	@test -n "$(strip $(DKMS_FILES))" || { echo "no files to ship"; exit 1; }
	mkdir -p $(DKMS_SRC)
	cp --parents $(DKMS_FILES) $(DKMS_SRC)/

dkms-install: dkms-check dkms-uninstall
	$(MAKE) --no-print-directory dkms-copy DKMS_SRC=$(DKMS_SRC)
	dkms add vmmemctl/$(VERSION)
	dkms build vmmemctl/$(VERSION) -k $(KVER)
	dkms install vmmemctl/$(VERSION) -k $(KVER)

dkms-uninstall:
	if test -d /var/lib/dkms/vmmemctl/$(VERSION); then \
		dkms remove vmmemctl/$(VERSION) --all; fi
	rm -rf $(DKMS_SRC)

export KERNELS TESTS REPEAT JOBS KERNEL

deb: $(DEB)

# Built from a staging copy of DKMS_FILES and debian/, so neither the tree's build
# products nor debhelper's files end up in the package or in the tree. -d: deb-deps
# installed the build dependencies; nothing is compiled, so dpkg's implicit
# build-essential is not needed.
$(DEB): $(DKMS_FILES) $(wildcard debian/* debian/*/*)
	@$(MAKE) --no-print-directory dkms-check
	@$(MAKE) --no-print-directory deb-deps
	rm -rf $(DEB_OUT)/build
	mkdir -p $(DEB_STAGE)
	cp --parents -r $(DKMS_FILES) debian $(DEB_STAGE)/
	cd $(DEB_STAGE) && dpkg-buildpackage --build=all -us -uc -d
	rm -f $(DEB_OUT)/vmmemctl-dkms_*_all.deb
	mv $(DEB_OUT)/build/$(notdir $@) $@
	rm -rf $(DEB_OUT)/build
	@echo "built $@"

# Debian packages only, with apt-get (as root or through sudo), like tests/setup.sh.
deb-deps:
	@missing=; for p in $(DEB_BUILD_DEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || \
			missing="$$missing $$p"; done; \
	test -z "$$missing" && exit 0; \
	sudo=; if [ "$$(id -u)" != 0 ]; then \
		command -v sudo >/dev/null && sudo=sudo || { echo "deb: need root or sudo to install$$missing"; exit 1; }; fi; \
	echo "deb: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	$$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null || \
	{ $$sudo apt-get update -qq && $$sudo apt-get install -y -qq --no-install-recommends $$missing >/dev/null; } || \
	{ echo "deb: apt-get install$$missing failed"; exit 1; }

demo:
	bash tests/demo.sh

check:
	bash tests/check.sh

check-debug:
	bash tests/check_debug.sh

check-kcsan:
	DEBUG_KERNEL_FLAVOUR=kcsan bash tests/check_debug.sh

bench:
	bash tests/bench.sh

.PHONY: all modules install clean dkms-check dkms-files dkms-copy dkms-install \
	dkms-uninstall deb deb-deps demo check check-debug check-kcsan bench FORCE vmb-probes-clean
