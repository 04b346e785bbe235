# wsjobd — plain GNU make.  `make run` and `make test` do all set-up (see `deps`).
#
#   make                      build/wsjobd and build/wsjob
#   make SANITIZE=address,undefined   instrumented build in build-address-undefined/
#   make SANITIZE=thread      ThreadSanitizer build (rings, I/O threads)
#   make test                 unit (Check) + integration tests
#   make bench / bench-ring   benchmarks
#   make bench-compare        wsjobd beside FastAPI, Node.js and fork-per-connection
#   make fuzz FUZZ_SECONDS=60 libFuzzer targets (clang)
#   make install PREFIX=/usr/local DESTDIR=

PREFIX   ?= /usr/local
DESTDIR  ?=
SANITIZE ?=
FUZZ_SECONDS ?= 60

comma := ,
BUILD ?= build$(if $(SANITIZE),-$(subst $(comma),-,$(SANITIZE)))

CC      ?= cc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
           -Iinclude -Ishm -Isrc -MMD -MP
LDFLAGS += -pthread
ifneq ($(SANITIZE),)
CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer
LDFLAGS += -fsanitize=$(SANITIZE)
endif

# Python is embedded in the daemon's workers only; the client never links it.
PY_CFLAGS := $(shell pkg-config --cflags python3-embed | sed 's/-I/-isystem /g')
PY_LIBS   := $(shell pkg-config --libs python3-embed)
CFLAGS    += $(PY_CFLAGS)
LIBS      := -levent -lhiredis -lmbedtls -lmbedx509 -lmbedcrypto -ljansson -lsystemd -lcurl -ldl -lm
CHECKLIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

# Every .c in shm/ is the ring library; every .c in a folder of src/ except
# the two programs' mains is the core both link (each takes only the objects
# it uses from the archive).  Tests link both archives, so adding a file needs
# no edit here.
SHM_SRC  := $(filter-out shm/bench_%.c,$(wildcard shm/*.c))
MAINS    := src/front/wsjobd.c src/client/wsjob.c
CORE_SRC := $(filter-out $(MAINS),$(wildcard src/*/*.c))
# Files built into the binary (.incbin): the dashboard's page.
ASSET_SRC := $(wildcard src/*/*.S)
ASSET_IN := $(wildcard src/front/dashboard/*)
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC:= $(wildcard tests/bench_*.c)
PLUGIN_SRC := $(wildcard tests/plugins/*.c)
EXAMPLE_SO := $(BUILD)/plugins/example.so
EXAMPLE_SRC := src/handlers/plugins/example.c

SHM_OBJ  := $(SHM_SRC:%.c=$(BUILD)/%.o)
CORE_OBJ := $(CORE_SRC:%.c=$(BUILD)/%.o) $(ASSET_SRC:%.S=$(BUILD)/%.o)
TEST_BINS := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:tests/%.c=$(BUILD)/tests/%)
PLUGINS  := $(PLUGIN_SRC:tests/plugins/%.c=$(BUILD)/plugins/%.so)

# Symbols of the plug-in API (include/wsjob.h) that handler .so files resolve
# against the daemon at dlopen time.
EXPORTS  := -Wl,--dynamic-list=src/handlers/wsjob.sym

.PHONY: all run test unit integration bench bench-ring bench-compare fuzz install clean deps lint
all: $(BUILD)/wsjobd $(BUILD)/wsjob $(PLUGINS) $(EXAMPLE_SO)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c -o $@ $<

# The assembler's -MMD output does not name the .incbin files.
$(BUILD)/%.o: %.S $(ASSET_IN)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libshm.a: $(SHM_OBJ)
	$(AR) rcs $@ $^
$(BUILD)/libcore.a: $(CORE_OBJ)
	$(AR) rcs $@ $^

$(BUILD)/wsjobd: $(BUILD)/src/front/wsjobd.o $(BUILD)/libcore.a $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) $(EXPORTS) -o $@ $^ $(LIBS) $(PY_LIBS)
$(BUILD)/wsjob: $(BUILD)/src/client/wsjob.o $(BUILD)/libcore.a $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# shm/ stands alone: its tests and benchmark link nothing else.
# (A pattern's % matches at least one character, so test_ring itself is named.)
$(BUILD)/tests/test_ring: $(BUILD)/tests/test_ring.o $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECKLIBS)
$(BUILD)/tests/test_ring%: $(BUILD)/tests/test_ring%.o $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(CHECKLIBS)
$(BUILD)/tests/bench_ring%: $(BUILD)/tests/bench_ring%.o $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) -o $@ $^ -lm
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/libcore.a $(BUILD)/libshm.a
	$(CC) $(LDFLAGS) $(EXPORTS) -o $@ $^ $(LIBS) $(PY_LIBS) $(CHECKLIBS)

$(EXAMPLE_SO): $(EXAMPLE_SRC) include/wsjob.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<
$(BUILD)/plugins/%.so: tests/plugins/%.c include/wsjob.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

deps:
	@scripts/deps.sh

run: deps all
	$(BUILD)/wsjobd $(ARGS)

test: deps all $(TEST_BINS) $(BENCHES)
	@BUILD=$(BUILD) tests/run.sh

bench-ring: all $(BUILD)/tests/bench_ring
	$(BUILD)/tests/bench_ring

bench: deps all $(BENCHES)
	@BUILD=$(BUILD) scripts/bench.sh

bench-compare: deps all
	@BUILD=$(BUILD) scripts/compare.sh

FUZZ_SRC := $(wildcard tests/fuzz_*.c)
FUZZERS  := $(FUZZ_SRC:tests/%.c=build-fuzz/%)
build-fuzz/%: tests/%.c $(CORE_SRC) $(ASSET_SRC) $(ASSET_IN) $(SHM_SRC)
	@mkdir -p build-fuzz
	clang -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Ishm -Isrc \
	  -fsanitize=fuzzer,address,undefined $(PY_CFLAGS) -o $@ $< $(CORE_SRC) $(ASSET_SRC) $(SHM_SRC) $(LIBS) $(PY_LIBS) -pthread
fuzz: $(FUZZERS)
	@for f in $(FUZZERS); do n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build-fuzz/corpus-$$n tests/corpus/$$n \
	    || exit 1; done

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man3 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/wsjobd $(BUILD)/wsjob $(DESTDIR)$(PREFIX)/bin/
	install -m 644 include/wsjob.h $(DESTDIR)$(PREFIX)/include/
	for m in man/*.[1-8]; do s=$${m##*.}; install -m 644 $$m $(DESTDIR)$(PREFIX)/share/man/man$$s/; done
	sed 's|@BINDIR@|$(PREFIX)/bin|' scripts/wsjobd.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/wsjobd.service
	scripts/instance_unit.sh < $(DESTDIR)$(PREFIX)/lib/systemd/system/wsjobd.service \
	  > $(DESTDIR)$(PREFIX)/lib/systemd/system/wsjobd@.service
	install -m 644 scripts/wsjobd.socket $(DESTDIR)$(PREFIX)/lib/systemd/system/

clean:
	rm -rf build build-* 

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
