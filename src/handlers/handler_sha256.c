/* handler_sha256.c — `sha256`: an iterated hash chain (SPEC §7).
 *
 * Input {"data":S,"rounds":R}, 1 <= R <= 10^8.  h_1 = SHA-256(S) and
 * h_(i+1) = SHA-256(hex(h_i)) with lowercase hex; the output is hex(h_R).
 *
 * h_1 is hashed by mbedTLS.  Every later round hashes exactly 64 bytes, so
 * its two blocks are fixed in shape: the 64 hex characters, then a padding
 * block that never changes.  That loop is where all the time goes, so on
 * x86-64 CPUs with the SHA extensions it runs on them directly, keeping the
 * state in registers and turning it into hex with a few byte shuffles; the
 * hex never goes through memory.  Elsewhere the loop calls mbedTLS.  The
 * unit test checks the fast loop against a chain computed with mbedTLS
 * alone. */
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <mbedtls/sha256.h>
#include <mbedtls/version.h>

#include "handlers/handler_args.h"
#include "handlers/handlers_builtin.h"

#define SHA256_MAX_ROUNDS 100000000
/* Rounds between cancel polls: 0.1 to 0.4 ms, far inside the grace period. */
#define POLL_ROUNDS 1024
/* Polls between progress reports (~65k rounds, 6 to 25 ms), so the short
 * jobs a benchmark sends never make a progress event at all. */
#define PROGRESS_POLLS 64

typedef int (*chain_fn)(unsigned char digest[32], uint32_t rounds);

static int sha256_bytes(const void *data, size_t len, unsigned char out[32])
{
#if MBEDTLS_VERSION_NUMBER >= 0x03000000
    return mbedtls_sha256(data, len, out, 0);
#else
    return mbedtls_sha256_ret(data, len, out, 0);
#endif
}

static void to_hex(const unsigned char digest[32], char hex[64])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
}

/* The portable chain: `rounds` times digest = SHA-256(hex(digest)). */
static int chain_mbedtls(unsigned char digest[32], uint32_t rounds)
{
    char hex[64];
    for (uint32_t i = 0; i < rounds; i++) {
        to_hex(digest, hex);
        if (sha256_bytes(hex, sizeof hex, digest) != 0)
            return WSJOB_ERR;
    }
    return WSJOB_OK;
}

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

#define SHANI __attribute__((target("sha,ssse3,sse4.1")))

static int have_sha_ni(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return 0;
    return ssse3 && sse41 && ((b >> 29) & 1);
}

/* FIPS 180-4 §4.2.2. */
static const uint32_t K[64] __attribute__((aligned(16))) = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
    0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
    0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
    0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
    0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
    0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
    0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* The SHA instructions keep the eight working words in two registers in
 * the order ABEF and CDGH (A in the top lane).  m[0..3] hold the block's 16
 * message words, big-endian already, lowest lane first. */
SHANI static inline void compress(__m128i *abef, __m128i *cdgh, const __m128i m[4])
{
    __m128i s0 = *abef, s1 = *cdgh;
    __m128i w[4] = { m[0], m[1], m[2], m[3] };
    for (int i = 0; i < 16; i++) {
        if (i >= 4) {
            /* W[t..t+3] from W[t-16..t-1]: msg1 adds sigma0 terms, the
             * alignr supplies W[t-7..t-4], msg2 adds sigma1 terms. */
            __m128i t = _mm_sha256msg1_epu32(w[i & 3], w[(i + 1) & 3]);
            t = _mm_add_epi32(t, _mm_alignr_epi8(w[(i + 3) & 3], w[(i + 2) & 3], 4));
            w[i & 3] = _mm_sha256msg2_epu32(t, w[(i + 3) & 3]);
        }
        __m128i wk = _mm_add_epi32(w[i & 3], _mm_load_si128((const __m128i *)&K[4 * i]));
        s1 = _mm_sha256rnds2_epu32(s1, s0, wk);
        s0 = _mm_sha256rnds2_epu32(s0, s1, _mm_shuffle_epi32(wk, 0x0E));
    }
    *abef = _mm_add_epi32(*abef, s0);
    *cdgh = _mm_add_epi32(*cdgh, s1);
}

/* Two words as 16 lowercase hex characters, returned as the four
 * big-endian message words they make.  Byte k of a word holds the
 * characters 6-2k and 7-2k of its hex, so pairing low and high nibbles
 * byte by byte yields each message word with its two halves swapped. */
SHANI static inline __m128i hex_words(__m128i lo_chars, __m128i hi_chars, int high_half)
{
    __m128i pairs = high_half ? _mm_unpackhi_epi8(lo_chars, hi_chars)
                              : _mm_unpacklo_epi8(lo_chars, hi_chars);
    return _mm_shuffle_epi32(pairs, 0xB1);
}

/* v0 = [A B C D], v1 = [E F G H] (lane 0 first): hex(A..H) as a block. */
SHANI static inline void hex_block(__m128i v0, __m128i v1, __m128i m[4])
{
    const __m128i digits = _mm_setr_epi8('0', '1', '2', '3', '4', '5', '6', '7',
                                         '8', '9', 'a', 'b', 'c', 'd', 'e', 'f');
    const __m128i nib = _mm_set1_epi8(0x0f);
    __m128i v[2] = { v0, v1 };
    for (int k = 0; k < 2; k++) {
        __m128i lo = _mm_and_si128(v[k], nib);
        __m128i hi = _mm_and_si128(_mm_srli_epi32(v[k], 4), nib);
        lo = _mm_shuffle_epi8(digits, lo);
        hi = _mm_shuffle_epi8(digits, hi);
        m[2 * k] = hex_words(lo, hi, 0);
        m[2 * k + 1] = hex_words(lo, hi, 1);
    }
}

SHANI static int chain_sha_ni(unsigned char digest[32], uint32_t rounds)
{
    const __m128i bswap = _mm_setr_epi8(3, 2, 1, 0, 7, 6, 5, 4,
                                        11, 10, 9, 8, 15, 14, 13, 12);
    /* The initial hash value (FIPS 180-4 §5.3.3) in ABEF / CDGH order. */
    const __m128i iv_abef = _mm_set_epi32(0x6a09e667, (int)0xbb67ae85,
                                          0x510e527f, (int)0x9b05688c);
    const __m128i iv_cdgh = _mm_set_epi32(0x3c6ef372, (int)0xa54ff53a,
                                          0x1f83d9ab, 0x5be0cd19);
    /* A 64-byte message pads to a second block: 0x80, zeros, bit length 512. */
    const __m128i pad[4] = {
        _mm_set_epi32(0, 0, 0, (int)0x80000000), _mm_setzero_si128(),
        _mm_setzero_si128(), _mm_set_epi32(512, 0, 0, 0),
    };
    __m128i v0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)digest), bswap);
    __m128i v1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(digest + 16)), bswap);
    for (uint32_t r = 0; r < rounds; r++) {
        __m128i m[4];
        hex_block(v0, v1, m);
        __m128i abef = iv_abef, cdgh = iv_cdgh;
        compress(&abef, &cdgh, m);
        compress(&abef, &cdgh, pad);
        /* Back from ABEF / CDGH to A..D and E..H. */
        __m128i dcba = _mm_unpackhi_epi64(cdgh, abef);
        __m128i hgfe = _mm_unpacklo_epi64(cdgh, abef);
        v0 = _mm_shuffle_epi32(dcba, 0x1B);
        v1 = _mm_shuffle_epi32(hgfe, 0x1B);
    }
    _mm_storeu_si128((__m128i *)digest, _mm_shuffle_epi8(v0, bswap));
    _mm_storeu_si128((__m128i *)(digest + 16), _mm_shuffle_epi8(v1, bswap));
    return WSJOB_OK;
}

static chain_fn detect_chain(void)
{
    return have_sha_ni() ? chain_sha_ni : chain_mbedtls;
}
#else
static chain_fn detect_chain(void)
{
    return chain_mbedtls;
}
#endif

/* CPUID is slow under a hypervisor (it traps), so ask once a process. */
static pthread_once_t chain_once = PTHREAD_ONCE_INIT;
static chain_fn chain_best;

static void pick_once(void)
{
    chain_best = detect_chain();
}

static chain_fn pick_chain(void)
{
    if (pthread_once(&chain_once, pick_once) != 0 || !chain_best)
        return chain_mbedtls;
    return chain_best;
}

/* h_1 .. h_rounds, polling for cancel between batches. */
static int run_chain(wsjob_ctx *ctx, unsigned char digest[32], uint64_t rounds)
{
    chain_fn chain = pick_chain();
    uint64_t polls = 0;
    for (uint64_t done = 1; done < rounds; ) {
        uint64_t n = rounds - done < POLL_ROUNDS ? rounds - done : POLL_ROUNDS;
        if (chain(digest, (uint32_t)n) != WSJOB_OK)
            return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "SHA-256 failed");
        done += n;
        if (wsjob_cancelled(ctx))
            return wsjob_fail(ctx, WSJOB_E_CANCELLED,
                              "cancelled after %" PRIu64 " rounds", done);
        if (++polls % PROGRESS_POLLS == 0)
            wsjob_progress(ctx, done, rounds);
    }
    return WSJOB_OK;
}

/* Reads the input and computes h_1; the JSON is released before the long
 * loop so a job holds nothing it does not need while it runs. */
static int first_round(wsjob_ctx *ctx, unsigned char digest[32], int64_t *rounds)
{
    static const char *const known[] = { "data", "rounds", NULL };
    json_t *obj = args_object(ctx, known);
    if (!obj)
        return WSJOB_ERR;
    const char *data;
    size_t len;
    int rc = args_string(ctx, obj, "data", &data, &len);
    if (rc == WSJOB_OK)
        rc = args_int(ctx, obj, "rounds", 1, SHA256_MAX_ROUNDS, rounds);
    if (rc == WSJOB_OK && sha256_bytes(data, len, digest) != 0)
        rc = wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "SHA-256 failed");
    json_decref(obj);
    return rc;
}

int handler_sha256(wsjob_ctx *ctx)
{
    unsigned char digest[32];
    int64_t rounds;
    if (first_round(ctx, digest, &rounds) != WSJOB_OK)
        return WSJOB_ERR;
    if (run_chain(ctx, digest, (uint64_t)rounds) != WSJOB_OK)
        return WSJOB_ERR;
    char hex[64];
    to_hex(digest, hex);
    if (wsjob_output(ctx, hex, sizeof hex) != WSJOB_OK)
        return wsjob_fail(ctx, WSJOB_E_HANDLER_ERROR, "cannot store output");
    return WSJOB_OK;
}
