# build/chatbench, the load generator (issue 7). Included by the main Makefile,
# whose CFLAGS and BUILD it reuses. It links only libcrypto (SHA-1 for the
# WebSocket handshake) and compiles server/buf/buf.c in; none of the server's
# protocol code: the point is an independent client.

BUILD ?= build
# Included before the Makefile's first rule, this file must not become the default goal.
CHATBENCH_GOAL := $(.DEFAULT_GOAL)
CHATBENCH_SRC := $(wildcard bench/chatbench/*.c) server/buf/buf.c
CHATBENCH_OBJ := $(CHATBENCH_SRC:%.c=$(BUILD)/obj/%.o)

.PHONY: chatbench
chatbench: $(BUILD)/chatbench

# Same pattern as the main Makefile's objects, header dependencies from the compiler.
$(BUILD)/obj/bench/chatbench/%.o: bench/chatbench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(DEPFLAGS) -c $< -o $@

$(BUILD)/chatbench: $(CHATBENCH_OBJ)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(shell pkg-config --libs libcrypto) -lm

# Empty when included first: make then takes the next rule it reads, as before.
.DEFAULT_GOAL := $(CHATBENCH_GOAL)
