# detour - one non-recursive GNU Makefile.
#
#   make                 build/detourd, build/detourctl (release: -O2 -g)
#   make asan            the same under AddressSanitizer + UBSan in build/asan,
#                        with the test-only crash points compiled in
#   make test            install what tests need, build, run every test;
#                        ends with "N passed, N failed"
#   make run             install, build, write a demo configuration under
#                        ./run and start detourd in the foreground
#   make bench           detourd beside Postfix on this machine (bench/)
#   make install         PREFIX (/usr/local) and DESTDIR are honoured
#   make format          clang-format every source file
#   make fuzz            build the libFuzzer drivers of fuzz/ with clang and run
#                        each for FUZZ_SECONDS (30) seconds (fuzz/README.md)
#
# Variables: CC, CFLAGS, LDFLAGS, WERROR=1 (turn warnings into errors).

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
SBINDIR  ?= $(PREFIX)/sbin
MANDIR   ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC       ?= cc
BUILD    ?= build
CFLAGS   ?= -O2 -g
SANITIZE ?=
TESTING  ?=

PKGS     := libevent libevent_openssl libevent_pthreads libcares sqlite3 inih libcrypt openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null || \
		echo -levent_openssl -levent_pthreads -levent -lcares -lsqlite3 -linih -lcrypt -lssl -lcrypto)

WARN := -Wall -Wextra -Wformat=2 -Wshadow -Wvla -Wimplicit-fallthrough \
	-Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

DEFS := -D_GNU_SOURCE -DSYSCONFDIR='"$(SYSCONFDIR)"'
ifneq ($(TESTING),)
DEFS += -DDETOUR_TESTING
endif

ALL_CFLAGS  = -std=gnu11 $(WARN) $(CFLAGS) $(SANITIZE) $(DEFS) -Isrc $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS) $(SANITIZE) -pthread
LIBS        = $(PKG_LIBS) -lm

LIB_SRC := $(sort $(wildcard src/lib/*.c src/smtp/*.c src/config/*.c src/queue/*.c \
	src/server/*.c src/ctl/*.c src/auth/*.c src/delivery/*.c src/dns/*.c src/client/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
LIB_A   := $(BUILD)/libdetour.a

PROGS := detourd detourctl detour
PROG_BIN := $(PROGS:%=$(BUILD)/%)

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all asan test unit run bench install uninstall clean format deps fuzz fuzz-build
all: $(PROG_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIB_A): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Each program is the objects of src/cmd/NAME/ linked with the library.
define prog_rule
$(1)_OBJ := $$(patsubst %.c,$(BUILD)/obj/%.o,$$(wildcard src/cmd/$(1)/*.c))
$(BUILD)/$(1): $$($(1)_OBJ) $(LIB_A)
	$$(CC) $$(ALL_LDFLAGS) -o $$@ $$($(1)_OBJ) $(LIB_A) $$(LIBS)
endef
$(foreach p,$(PROGS),$(eval $(call prog_rule,$(p))))

$(BUILD)/tests/%: tests/unit/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(LIB_A) $(LIBS) -lcmocka

unit: $(UNIT_BIN)

asan:
	$(MAKE) BUILD=build/asan TESTING=1 CFLAGS="-O1 -g -fno-omit-frame-pointer" \
		SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
		all unit

deps:
	scripts/deps.sh build test

# Tests run against the sanitizer build; the release build must compile too.
test: deps
	$(MAKE) WERROR=1 all
	$(MAKE) WERROR=1 asan
	tests/run.sh build/asan

run:
	scripts/deps.sh build run
	$(MAKE) all
	scripts/run-demo.sh

bench:
	scripts/deps.sh build bench
	$(MAKE) all
	bench/run.sh

# Fuzzing (fuzz/README.md). Every fuzz/*.c is one libFuzzer target,
# build/fuzz/NAME. The library is compiled again with clang under
# build/fuzz/obj, with coverage instrumentation, ASan and UBSan, by a
# recursive make; `make fuzz` then runs each target for FUZZ_SECONDS on a
# writable copy of its seed corpus and fails if any target fails.
# FUZZ_TARGETS picks targets by name, FUZZ_ARGS adds libFuzzer options.
FUZZ_CC       ?= clang
FUZZ_SECONDS  ?= 30
FUZZ_TARGETS  ?=
FUZZ_ARGS     ?=
FUZZ_BUILD    := build/fuzz
FUZZ_CFLAGS   := -O1 -g -fno-omit-frame-pointer
FUZZ_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB      := $(FUZZ_BUILD)/libdetour.a
FUZZ_BIN      := $(patsubst fuzz/%.c,$(FUZZ_BUILD)/%,$(sort $(wildcard fuzz/*.c)))

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_ARGS="$(FUZZ_ARGS)" fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

fuzz-build:
	scripts/deps.sh build fuzz
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CFLAGS="$(FUZZ_CFLAGS)" TESTING= \
		SANITIZE="-fsanitize=fuzzer-no-link $(FUZZ_SANITIZE)" $(FUZZ_LIB)
	$(MAKE) $(FUZZ_BIN)

$(FUZZ_BIN): $(FUZZ_BUILD)/%: fuzz/%.c fuzz/fuzz.h $(FUZZ_LIB)
	$(FUZZ_CC) -std=gnu11 $(WARN) $(FUZZ_CFLAGS) $(DEFS) -Isrc $(PKG_CFLAGS) \
		-fsanitize=fuzzer $(FUZZ_SANITIZE) -o $@ $< $(FUZZ_LIB) $(LIBS) -pthread

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5
	install -m 755 $(BUILD)/detourd $(DESTDIR)$(SBINDIR)/detourd
	install -m 755 $(BUILD)/detourctl $(DESTDIR)$(SBINDIR)/detourctl
	install -m 644 man/detourd.8 man/detourctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 644 man/detour.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -d $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BUILD)/detour $(DESTDIR)$(BINDIR)/detour
	install -m 644 man/detour.1 $(DESTDIR)$(MANDIR)/man1/
	install -d $(DESTDIR)$(SYSCONFDIR)/detour
	install -m 644 etc/detour.conf $(DESTDIR)$(SYSCONFDIR)/detour/detour.conf.example
	test -e $(DESTDIR)$(SYSCONFDIR)/detour/detour.conf || \
		install -m 644 etc/detour.conf $(DESTDIR)$(SYSCONFDIR)/detour/detour.conf

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/detourd $(DESTDIR)$(SBINDIR)/detourctl \
		$(DESTDIR)$(MANDIR)/man8/detourd.8 $(DESTDIR)$(MANDIR)/man8/detourctl.8 \
		$(DESTDIR)$(MANDIR)/man5/detour.conf.5
	rm -f $(DESTDIR)$(BINDIR)/detour $(DESTDIR)$(MANDIR)/man1/detour.1

format:
	clang-format -i $(wildcard src/*/*.c src/*/*.h src/cmd/*/*.c src/cmd/*/*.h tests/unit/*.c)

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(foreach p,$(PROGS),$($(p)_OBJ:.o=.d))
