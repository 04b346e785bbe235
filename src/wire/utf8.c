/* utf8.c — a byte-class DFA for UTF-8 (RFC 3629 §4, the "UTF8-octets" ABNF).
 *
 * Each byte maps to one of 12 classes; the state says which bytes may come
 * next.  The narrow second-byte ranges of the ABNF (E0 A0..BF, ED 80..9F,
 * F0 90..BF, F4 80..8F) are what exclude overlongs, surrogates and code
 * points above U+10FFFF, so they get states of their own. */
#include "wire/utf8.h"

#include <string.h>

enum {
    S_ACCEPT = UTF8_ACCEPT,
    S_REJECT = UTF8_REJECT,
    S_C1,      /* one continuation byte (80..BF) left */
    S_C2,      /* two left */
    S_C3,      /* three left */
    S_E0,      /* after E0: A0..BF, then one more */
    S_ED,      /* after ED: 80..9F (no surrogates), then one more */
    S_F0,      /* after F0: 90..BF, then two more */
    S_F4,      /* after F4: 80..8F (<= U+10FFFF), then two more */
    N_STATES
};

enum {
    C_ASCII, C_80, C_90, C_A0, C_BAD, C_LEAD2, C_E0, C_LEAD3, C_ED,
    C_F0, C_LEAD4, C_F4, N_CLASSES
};

static const uint8_t byte_class[256] = {
    /* 00..7F */
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0, 0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
    /* 80..8F, 90..9F, A0..BF */
    1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1, 2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,2,
    3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3, 3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,3,
    /* C0..C1 would only encode overlong ASCII; C2..DF */
    4,4,5,5,5,5,5,5,5,5,5,5,5,5,5,5, 5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,5,
    /* E0, E1..EC, ED, EE..EF */
    6,7,7,7,7,7,7,7,7,7,7,7,7,8,7,7,
    /* F0, F1..F3, F4, F5..FF (beyond U+10FFFF or not UTF-8 at all) */
    9,10,10,10,11,4,4,4,4,4,4,4,4,4,4,4,
};

#define R S_REJECT
static const uint8_t next_state[N_STATES][N_CLASSES] = {
    /*            ASCII 80  90  A0  BAD L2    E0    L3    ED    F0    L4    F4 */
    [S_ACCEPT] = { 0,   R,  R,  R,  R,  S_C1, S_E0, S_C2, S_ED, S_F0, S_C3, S_F4 },
    [S_REJECT] = { R,   R,  R,  R,  R,  R,    R,    R,    R,    R,    R,    R    },
    [S_C1]     = { R,   0,  0,  0,  R,  R,    R,    R,    R,    R,    R,    R    },
    [S_C2]     = { R, S_C1, S_C1, S_C1, R, R, R,    R,    R,    R,    R,    R    },
    [S_C3]     = { R, S_C2, S_C2, S_C2, R, R, R,    R,    R,    R,    R,    R    },
    [S_E0]     = { R,   R,  R, S_C1, R, R,    R,    R,    R,    R,    R,    R    },
    [S_ED]     = { R, S_C1, S_C1, R, R, R,    R,    R,    R,    R,    R,    R    },
    [S_F0]     = { R,   R, S_C2, S_C2, R, R,  R,    R,    R,    R,    R,    R    },
    [S_F4]     = { R, S_C2, R,  R,  R,  R,    R,    R,    R,    R,    R,    R    },
};
#undef R

/* Returns how many leading bytes of s are ASCII, looking 8 at a time; text
 * messages are mostly ASCII, so most bytes never reach the table. */
static size_t ascii_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, sizeof w);
        if (w & UINT64_C(0x8080808080808080))
            break;
    }
    while (i < n && s[i] < 0x80)
        i++;
    return i;
}

uint32_t utf8_step(uint32_t state, const uint8_t *s, size_t n)
{
    if (state >= N_STATES)
        return UTF8_REJECT;
    size_t i = 0;
    while (i < n) {
        if (state == S_ACCEPT) {
            i += ascii_prefix(s + i, n - i);
            if (i == n)
                break;
        }
        state = next_state[state][byte_class[s[i]]];
        if (state == S_REJECT)
            return UTF8_REJECT;
        i++;
    }
    return state;
}

bool utf8_valid(const uint8_t *s, size_t n)
{
    return utf8_step(UTF8_ACCEPT, s, n) == UTF8_ACCEPT;
}
