# A plain Makefile: `make check` runs each test program as $(VMEXEC) ./prog.
# Cross build for s390x, from a build directory:
#   make -f SRC/plain.mk srcdir=SRC CC=s390x-linux-gnu-gcc CXX=s390x-linux-gnu-g++ VMEXEC=vmexec check
# (The automake build of the same tests is configure.ac and Makefile.am.)
srcdir ?= .
VPATH = $(srcdir) $(srcdir)/../common
VMEXEC ?=
CFLAGS ?= -O2
CXXFLAGS ?= -O2
override CFLAGS += -std=c17 -Wall -Wextra -Wpedantic -Werror
override CXXFLAGS += -std=c++17 -Wall -Wextra -Wpedantic -Werror
# The byte order the byteorder test expects: the target's, from its triplet.
EXPECT_BIG_ENDIAN ?= $(if $(filter s390x-% s390-% powerpc-% powerpc64-% mips-% mips64-% sparc%,$(shell $(CC) -dumpmachine)),1,0)
# The guest sees the working directory (the build tree); share the source
# tree too, read-only, for the data file.
export VMEXEC_SHARE := $(abspath $(srcdir)):ro

PROGRAMS = byteorder datafile writer reader threads argsenv

all: $(PROGRAMS)

byteorder: byteorder.c
	$(CC) $(CFLAGS) -DEXPECT_BIG_ENDIAN=$(EXPECT_BIG_ENDIAN) -o $@ $<
writer: writer.c
	$(CC) $(CFLAGS) -o $@ $<
threads: threads.c
	$(CC) $(CFLAGS) -pthread -o $@ $<
datafile reader argsenv: %: %.cpp
	$(CXX) $(CXXFLAGS) -o $@ $<

check: $(PROGRAMS)
	$(VMEXEC) ./byteorder
	$(VMEXEC) ./datafile $(abspath $(srcdir))/data/greeting.txt
	$(VMEXEC) ./writer handoff.txt
	$(VMEXEC) ./reader handoff.txt
	$(VMEXEC) ./threads
	EXAMPLE_GREETING='hello from the build system' $(VMEXEC) ./argsenv --name 'two words'
	@echo "make check: all tests passed"

clean:
	rm -f $(PROGRAMS) handoff.txt

.PHONY: all check clean
