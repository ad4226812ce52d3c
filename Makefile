# SPDX-License-Identifier: GPL-2.0
#
# vmmemctl - out-of-tree build, install and the project's own targets.
#
#   make                 build against the running kernel
#   make KDIR=<dir>      build against another kernel's build tree
#   make install         install to the kernel's extra/ and run depmod
#   make clean
#   make demo            boot a VMware-looking guest and watch the balloon
#   make check           every test (static checks and guest scenarios)
#   make bench           vmmemctl against the in-tree vmw_balloon

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PWD := $(shell pwd)

all: modules

modules:
	$(MAKE) -C $(KDIR) M=$(PWD) modules

install: modules
	$(MAKE) -C $(KDIR) M=$(PWD) INSTALL_MOD_DIR=extra modules_install
	depmod -a $(KVER)

clean:
	$(MAKE) -C $(KDIR) M=$(PWD) clean

demo:
	bash tests/demo.sh

check:
	bash tests/check.sh

bench:
	bash tests/bench.sh

.PHONY: all modules install clean demo check bench
