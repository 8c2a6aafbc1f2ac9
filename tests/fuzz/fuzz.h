/* What the fuzz targets of tests/fuzz share: the property check, and a
 * reader of the structured inputs some targets parse from the fuzzer's
 * bytes. */
#ifndef VMEXEC_FUZZ_H
#define VMEXEC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <sanitizer/common_interface_defs.h>

/* A broken property is a crash: libFuzzer saves the input. The message goes
 * where the sanitizers report (still there when -close_fd_mask hides the
 * code's own warnings). */
#define REQUIRE(cond)                                                             \
  do {                                                                            \
    if (!(cond)) {                                                                \
      char msg_[512];                                                             \
      snprintf(msg_, sizeof msg_, "%s:%d: property broken: %s", __FILE__, __LINE__, #cond); \
      __sanitizer_report_error_summary(msg_);                                     \
      abort();                                                                    \
    }                                                                             \
  } while (0)

/* The fuzzer's bytes taken one field at a time; past the end, zeroes. */
struct fuzz_input {
  const uint8_t *p;
  size_t n;
};

static inline uint8_t fuzz_byte(struct fuzz_input *in)
{
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}

static inline uint16_t fuzz_u16(struct fuzz_input *in)
{
  uint16_t hi = fuzz_byte(in);
  return (uint16_t)(hi << 8 | fuzz_byte(in));
}

/* Up to MAX bytes (fewer at the end of the input); *LEN is set. */
static inline const uint8_t *fuzz_bytes(struct fuzz_input *in, size_t max, size_t *len)
{
  *len = max < in->n ? max : in->n;
  const uint8_t *p = in->p;
  in->p += *len;
  in->n -= *len;
  return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
