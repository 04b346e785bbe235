/* utf8.h — incremental UTF-8 validation (RFC 3629).
 *
 * A validator is one uint32_t of state, so a text message that arrives in
 * fragments (RFC 6455 §5.6, §8.1) is checked piece by piece with no buffering:
 *
 *     uint32_t st = UTF8_ACCEPT;
 *     st = utf8_step(st, part1, n1);      // UTF8_REJECT at once on a bad byte
 *     st = utf8_step(st, part2, n2);
 *     valid = (st == UTF8_ACCEPT);        // at the end of the message
 *
 * Any state other than UTF8_ACCEPT and UTF8_REJECT means "valid so far, in the
 * middle of a multi-byte sequence": not an error until the message ends.
 * UTF8_REJECT is sticky.  Overlong forms, UTF-16 surrogates (U+D800..U+DFFF)
 * and code points above U+10FFFF are rejected; noncharacters are valid. */
#ifndef WSJOBD_UTF8_H
#define WSJOBD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u

/* Advances state over n bytes; returns UTF8_REJECT as soon as a byte that can
 * not continue a valid sequence is seen (the rest is not read). */
uint32_t utf8_step(uint32_t state, const uint8_t *s, size_t n);

/* True when s[0..n) is complete, valid UTF-8. */
bool utf8_valid(const uint8_t *s, size_t n);

#endif
