# tako-vm — build, run, test.
#
#   make         build build/tako-vm and build/libtako.a
#   make run     install missing packages, build, serve (today: the brokers)
#   make test    install missing packages, build with ASan+UBSan, run every test
#   make fuzz    build the libFuzzer harnesses (clang) and run each briefly
#   make bench   run the benchmarks in tests/bench (never part of make test)
#
# Sources are found by wildcard: a new .c file in shared/, brokers/, actors/*/
# or http/ joins libtako; one in cli/ joins the binary; one in tests/unit/
# joins the Criterion unit-test binary. Nobody needs to edit this file to add
# a class.

BUILD   ?= build
SAN     ?= 0
CC      ?= cc
PKGS    := libczmq libzmq msgpack yaml-0.1 jansson libseccomp libpq libmicrohttpd libcurl

# Every folder with headers is on the include path: #include "tako_foo.h".
SRC_DIRS    := shared brokers http cli $(sort $(wildcard actors/*))
CFLAGS_BASE := -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O2 \
               -I. $(addprefix -I,$(SRC_DIRS)) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# --as-needed: the loader maps only the libraries the binary really calls
# (start-up time of every tako-vm command).
LDFLAGS     += -Wl,--as-needed
LDLIBS      := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifeq ($(SAN),1)
CFLAGS_BASE += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDFLAGS     += -fsanitize=address,undefined
endif
CFLAGS += $(CFLAGS_BASE)

LIB_SRC  := $(sort $(wildcard shared/*.c brokers/*.c actors/*/*.c http/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
UNIT_SRC := $(sort $(wildcard tests/unit/*.c))
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
HEADERS  := $(sort $(wildcard shared/*.h brokers/*.h actors/*/*.h http/*.h cli/*.h))

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_OBJ := $(UNIT_SRC:%.c=$(BUILD)/obj/%.o)

LIBTAKO  := $(BUILD)/libtako.a
TAKO     := $(BUILD)/tako-vm
SELFTEST := $(BUILD)/tako-selftest
UNIT     := $(BUILD)/tako-unit
ZYGOTE   := $(BUILD)/tako-zygote
ZYGOTE_CFLAGS := $(shell pkg-config --cflags python3-embed 2>/dev/null)
ZYGOTE_LIBS   := $(shell pkg-config --libs python3-embed 2>/dev/null)

.PHONY: all deps run test test-build fuzz bench clean
all: deps $(TAKO) $(SELFTEST) $(ZYGOTE)

deps:
	@deploy/deps.sh

$(BUILD)/obj/%.o: %.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBTAKO): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/gen/commands.h: $(CLI_SRC) tests/gen_commands.sh
	@mkdir -p $(dir $@)
	tests/gen_commands.sh $(filter cli/cmd_%.c,$(CLI_SRC)) > $@

$(BUILD)/obj/cli/main.o: cli/main.c $(BUILD)/gen/commands.h $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD)/gen -c $< -o $@

$(TAKO): $(CLI_OBJ) $(LIBTAKO)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIBTAKO) $(LDLIBS)

# Every class declares `void tako_NAME_test (bool verbose);` in its header.
# The self-test table is generated from those declarations, so tako-selftest
# and the Criterion suite always run every class's self-test.
$(BUILD)/gen/selftests.h: $(HEADERS) tests/gen_selftests.sh
	@mkdir -p $(dir $@)
	tests/gen_selftests.sh $(HEADERS) > $@
	tests/gen_selftests.sh --includes $(HEADERS) > $(BUILD)/gen/selftest_headers.h

$(BUILD)/obj/tests/selftest.o: tests/selftest.c $(BUILD)/gen/selftests.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD)/gen -c $< -o $@

$(SELFTEST): $(BUILD)/obj/tests/selftest.o $(LIBTAKO)
	$(CC) $(LDFLAGS) -o $@ $< $(LIBTAKO) $(LDLIBS)

$(BUILD)/obj/tests/unit_selftests.o: tests/unit_selftests.c $(BUILD)/gen/selftests.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(BUILD)/gen -c $< -o $@

$(UNIT): $(UNIT_OBJ) $(BUILD)/obj/tests/unit_selftests.o $(LIBTAKO)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

# make run: everything on this host in the foreground — brokers, the private
# PostgreSQL under data_dir, every actor, the REST API on 127.0.0.1:8000.
run: all
	$(TAKO) server

# make test: sanitizer build in build/asan, then the whole suite.
test:
	@deploy/deps.sh --test
	$(MAKE) --no-print-directory BUILD=build/asan SAN=1 test-build
	$(MAKE) --no-print-directory all
	tests/run.sh build/asan

test-build: $(TAKO) $(SELFTEST) $(UNIT) $(ZYGOTE)

# tako-zygote: the job types' started interpreters (tako_zygote.h), the one
# program that embeds Python, so nothing else maps libpython. Built from
# the sandbox's own sources, never with AddressSanitizer (UBSan only under
# SAN=1): its process image is every job's, and ASan's allocator and leak
# checker would change what a job sees (memory, exit output).
ZYGOTE_SRC := zygote/tako_zygote_main.c $(sort $(wildcard actors/executor/sandbox_*.c)) \
              actors/executor/tako_sandbox.c actors/executor/tako_zygote.c shared/tako_sha256.c
ZYGOTE_SAN := $(if $(filter 1,$(SAN)),-O1 -fno-omit-frame-pointer -fsanitize=undefined -fno-sanitize-recover=undefined)
$(ZYGOTE): $(ZYGOTE_SRC) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) -std=c17 -D_GNU_SOURCE -Wall -Wextra -Werror -g -O2 $(ZYGOTE_SAN) -I. $(addprefix -I,$(SRC_DIRS)) \
	  $(ZYGOTE_CFLAGS) $(shell pkg-config --cflags jansson libseccomp) -Wl,--as-needed -o $@ $(ZYGOTE_SRC) \
	  $(ZYGOTE_LIBS) $(shell pkg-config --libs jansson libseccomp) $(ZYGOTE_SAN)

# libFuzzer harnesses: tests/fuzz/fuzz_NAME.c, built with clang against the
# library sources (not the archive, so coverage reaches them).
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
FUZZ_SECONDS ?= 20
build/fuzz/%: tests/fuzz/%.c $(LIB_SRC) $(HEADERS)
	@mkdir -p build/fuzz
	clang -std=c17 -D_GNU_SOURCE -g -O1 -I. $(addprefix -I,$(SRC_DIRS)) $(shell pkg-config --cflags $(PKGS)) \
	  -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC) $(LDLIBS)

fuzz: deps $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  name=$$(basename $$f); mkdir -p build/fuzz/corpus/$$name; \
	  echo "fuzz: $$name for $(FUZZ_SECONDS)s"; mkdir -p tests/fuzz/seeds/$$name; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/corpus/$$name tests/fuzz/seeds/$$name 2>&1 | tail -n 2 || exit 1; \
	done

# Benchmark programs: tests/bench/NAME.c → $(BUILD)/bench/NAME.
$(BUILD)/bench/%: tests/bench/%.c $(LIBTAKO)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIBTAKO) $(LDLIBS)

bench: all
	@deploy/deps.sh --bench
	tests/bench/run.sh $(BUILD)

clean:
	rm -rf build
