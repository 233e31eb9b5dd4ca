# nearchat build. `make` builds everything; see README.md for the rest.
# BUILD selects the output folder so that `make asan` builds beside `make`.

BUILD ?= build
CC ?= cc
PKGS := libh2o-evloop jansson openssl hiredis libmaxminddb librabbitmq sqlite3 libmongoc-1.0
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lz -lpthread -lm
CFLAGS ?= -O2 -g
CFLAGS += -std=c17 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Wall -Wextra -Werror -Wno-unused-parameter \
          -Wno-missing-field-initializers -fno-strict-aliasing $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS += $(EXTRA_LDFLAGS)

MAINS := server/chatd/main.c server/testserver/main.c server/histctl/main.c
SRC_DIRS := server geo matcher
LIB_SRC := $(filter-out $(MAINS),$(shell find $(SRC_DIRS) -name '*.c' 2>/dev/null | sort))
# Header dependencies come from the compiler (-MMD -MP): each object
# depends on the headers it includes, written beside it as a .d file.
DEPFLAGS = -MMD -MP -MF $(@:%=%.d)
# Lua scripts for Redis are compiled into the binary (scripts/embed).
GEN_SRC := $(BUILD)/gen/matcher_lua.c $(BUILD)/gen/chat_lua.c
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(GEN_SRC:%.c=%.o)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(wildcard fuzz/fuzz_*.c)
FUZZ_BIN := $(FUZZ_SRC:fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_LIB_SRC := server/check/check.c server/note/note.c server/buf/buf.c server/sio/eio_packet.c server/sio/ws_frame.c server/sio/sio_packet.c server/guest/guest.c geo/geo.c

.PHONY: all test unit e2e run asan tsan fuzz fuzz-build lint format bench setup clean web web-test
all: $(BUILD)/chatd $(BUILD)/sio-testserver $(BUILD)/histctl $(BUILD)/chatbench $(UNIT_BIN) $(BUILD)/geo/test-city.mmdb web

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

# The scripts' key names (K.*), from the one list the C side reads too.
$(BUILD)/gen/keys.lua: server/keys/keys.def
	@mkdir -p $(dir $@)
	{ echo "-- generated from $< by make; do not edit"; echo "local K = {}"; \
	  sed -n 's/^KEY([A-Z_]*, *\([a-z_]*\), *"\([^"]*\)".*/K.\1 = "{nc}:\2"/p' $<; } > $@

$(BUILD)/gen/matcher_lua.c: matcher/matcher.lua $(BUILD)/gen/keys.lua scripts/embed
	@mkdir -p $(dir $@)
	scripts/embed matcher_lua $(BUILD)/gen/keys.lua $< > $@

$(BUILD)/gen/chat_lua.c: server/chat/chat.lua $(BUILD)/gen/keys.lua scripts/embed
	@mkdir -p $(dir $@)
	scripts/embed chat_lua $(BUILD)/gen/keys.lua $< > $@

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/lib.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/chatd: $(BUILD)/obj/server/chatd/main.o $(BUILD)/lib.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(PKG_LIBS)

$(BUILD)/sio-testserver: $(BUILD)/obj/server/testserver/main.o $(BUILD)/lib.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(PKG_LIBS)

$(BUILD)/histctl: $(BUILD)/obj/server/histctl/main.o $(BUILD)/lib.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/lib.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -Iserver -o $@ $< $(BUILD)/lib.a $(LDFLAGS) $(PKG_LIBS) $(shell pkg-config --libs cmocka)

# The City database the geo unit tests read (GEO_TEST_DB).
$(BUILD)/geo/test-city.mmdb: tests/fixtures/geo/cities.csv scripts/gen-geo-db
	@mkdir -p $(dir $@)
	scripts/gen-geo-db $< $@

# The web app (visitor PWA and moderator console): type-checked, then built by
# Vite into $(BUILD)/web, where chatd finds it beside its binary.
WEB_SRC := $(shell find web -path web/node_modules -prune -o -path web/dist -prune -o -type f -print 2>/dev/null)
$(BUILD)/web/index.html: $(WEB_SRC)
	cd web && npx --no-install tsc --noEmit
	cd web && NEARCHAT_WEB_OUT=$(abspath $(BUILD)/web) npx --no-install vite build --logLevel warn
	@touch $@

web: $(BUILD)/web/index.html

# Vitest: the web app's state logic.
web-test:
	cd web && npx --no-install vitest run

# The load generator (bench/chatbench).
-include bench/chatbench/chatbench.mk

# libFuzzer targets: the parsers alone, built with clang.
# One compiler call builds each from several sources, so it depends on every header they may include.
$(BUILD)/fuzz/%: fuzz/%.c $(FUZZ_LIB_SRC) $(shell find server geo -name '*.h')
	@mkdir -p $(dir $@)
	clang -std=c17 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iserver $(PKG_CFLAGS) \
	  -o $@ $< $(FUZZ_LIB_SRC) $(shell pkg-config --libs jansson openssl libmaxminddb)

fuzz-build: $(FUZZ_BIN)

# `make fuzz` runs each target for FUZZ_SECONDS (default 60); `make test` runs them briefly.
FUZZ_SECONDS ?= 60
fuzz: $(FUZZ_BIN)
	@for f in $(FUZZ_BIN); do \
	  n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 $(BUILD)/fuzz/corpus-$$n fuzz/seeds/$$n 2>$(BUILD)/fuzz/$$n.log \
	    || { tail -50 $(BUILD)/fuzz/$$n.log; echo "fuzz: $$n FOUND A CRASH"; exit 1; }; \
	done; echo "fuzz: no finding"

setup:
	scripts/setup

unit: export GEO_TEST_DB := $(CURDIR)/$(BUILD)/geo/test-city.mmdb
unit: $(UNIT_BIN) $(BUILD)/geo/test-city.mmdb
	@fail=0; for t in $(UNIT_BIN); do echo "== $$t"; $$t || fail=1; done; exit $$fail

e2e: all
	BUILD=$(BUILD) scripts/test-e2e

# The whole suite: lint, unit tests, end-to-end tests with socket.io-client, brief fuzzing.
test: setup
	$(MAKE) all fuzz-build
	$(MAKE) lint
	$(MAKE) unit
	$(MAKE) web-test
	$(MAKE) e2e
	$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-15}

asan: setup
	$(MAKE) BUILD=build-asan EXTRA_CFLAGS="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build-asan EXTRA_CFLAGS="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" unit e2e

# ThreadSanitizer: a race aborts the process (halt_on_error), so the test that drove it fails.
TSAN_FLAGS = BUILD=build-tsan EXTRA_CFLAGS="-O1 -g -fsanitize=thread" EXTRA_LDFLAGS="-fsanitize=thread"
tsan: setup
	$(MAKE) $(TSAN_FLAGS) all
	TSAN_OPTIONS=halt_on_error=1:report_signal_unsafe=0 $(MAKE) $(TSAN_FLAGS) unit e2e

run: setup all
	scripts/run

# The benchmark: chatd and the Node peer under the same scenarios; writes docs/benchmarks.md.
bench: setup all
	BUILD=$(BUILD) node bench/run.mjs

# Format, static analysis, and the shape of the code: no cycle of C files (from the objects), none past 800 lines.
lint: all
	scripts/check-layers $(BUILD)
	@# every Redis key is named in server/keys/keys.def only
	@! grep -rnE "[\"']\{nc\}" server matcher geo --include='*.c' --include='*.h' --include='*.lua' \
	  | grep -v '^server/keys/' | grep . || { echo "lint: a Redis key spelt outside server/keys/keys.def"; exit 1; }
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --inline-suppr \
	  --suppress=missingIncludeSystem --std=c11 -D__GNUC__ -Iserver server geo matcher tests/unit fuzz bench/chatbench

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan

# What the compiler said each object includes (absent before the first build).
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
