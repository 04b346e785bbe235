/* test_agent_check.c — the agent-check answer: the weight formula at its
 * edges, the drain high-water mark and its hysteresis, shutdown. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "front/agent_check.h"

static char line[AGENT_LINE_MAX];

/* cpu ring of 100, io ring of 100, 1000 connections at most. */
static const char *answer(uint32_t cpu, uint32_t io, uint64_t open, int *high)
{
    struct agent_load l = { .depth = { cpu, io }, .capacity = { 100, 100 },
                            .open = open, .max_connections = 1000 };
    size_t n = agent_answer(&l, high, line);
    ck_assert_uint_eq(n, strlen(line));
    ck_assert_uint_eq((unsigned char)line[n - 1], '\n');
    return line;
}

START_TEST(weight_is_the_free_share_of_the_fullest_resource)
{
    int high = 0;
    ck_assert_str_eq(answer(0, 0, 0, &high), "ready 100%\n");
    ck_assert_str_eq(answer(20, 0, 0, &high), "ready 80%\n");
    ck_assert_str_eq(answer(0, 35, 0, &high), "ready 65%\n");
    ck_assert_str_eq(answer(10, 5, 500, &high), "ready 50%\n");
    ck_assert_str_eq(answer(0, 0, 1, &high), "ready 100%\n");   /* 99.9: to the nearest */
    ck_assert_str_eq(answer(0, 0, 5, &high), "ready 100%\n");   /* 99.5: half up */
    ck_assert_str_eq(answer(0, 0, 6, &high), "ready 99%\n");
    ck_assert_int_eq(high, 0);
}
END_TEST

START_TEST(a_ready_answer_never_weighs_under_10_percent)
{
    /* At 90% of anything the answer is drain, so "ready" carries at least
     * 10%: never "ready 0%", even when a reload lowers max-connections
     * under what is open. */
    int high = 0;
    ck_assert_str_eq(answer(0, 0, 899, &high), "ready 10%\n");
    ck_assert_str_eq(answer(0, 0, 900, &high), "drain\n");
    high = 0;
    ck_assert_str_eq(answer(0, 0, 5000, &high), "drain\n");
    high = 0;
    ck_assert_str_eq(answer(100, 0, 0, &high), "drain\n");
}
END_TEST

START_TEST(drain_from_90_percent_until_under_75)
{
    int high = 0;
    ck_assert_str_eq(answer(89, 0, 0, &high), "ready 11%\n");
    ck_assert_str_eq(answer(90, 0, 0, &high), "drain\n");
    ck_assert_str_eq(answer(89, 0, 0, &high), "drain\n");   /* between the marks: kept */
    ck_assert_str_eq(answer(75, 0, 0, &high), "drain\n");
    ck_assert_str_eq(answer(74, 0, 0, &high), "ready 26%\n");
    ck_assert_str_eq(answer(89, 0, 0, &high), "ready 11%\n");   /* rising: not yet */
    ck_assert_str_eq(answer(0, 95, 0, &high), "drain\n");       /* either ring */
    ck_assert_str_eq(answer(0, 74, 800, &high), "drain\n");     /* all must be low */
    ck_assert_str_eq(answer(0, 74, 700, &high), "ready 26%\n");
}
END_TEST

START_TEST(exact_at_the_marks_with_a_small_ring)
{
    /* --queue-depth 8: 7/8 = 87.5%, 6/8 = 75% exactly, 5/8 = 62.5%. */
    struct agent_load l = { .capacity = { 8, 8 }, .max_connections = 10000 };
    int high = 0;
    uint32_t depths[] = { 7, 8, 7, 6, 5, 7 };
    const char *want[] = { "ready 13%\n", "drain\n", "drain\n", "drain\n", "ready 38%\n",
                           "ready 13%\n" };
    for (size_t i = 0; i < sizeof depths / sizeof depths[0]; i++) {
        l.depth[0] = depths[i];
        agent_answer(&l, &high, line);
        ck_assert_msg(strcmp(line, want[i]) == 0, "depth %u: %s", depths[i], line);
    }
}
END_TEST

START_TEST(shutting_down_always_drains)
{
    int high = 0;
    struct agent_load l = { .capacity = { 100, 100 }, .max_connections = 1000,
                            .shutting_down = 1 };
    agent_answer(&l, &high, line);
    ck_assert_str_eq(line, "drain\n");
    ck_assert_int_eq(high, 0);   /* the load mark is a separate matter */
}
END_TEST

static Suite *agent_suite(void)
{
    Suite *s = suite_create("agent_check");
    TCase *t = tcase_create("answer");
    tcase_add_test(t, weight_is_the_free_share_of_the_fullest_resource);
    tcase_add_test(t, a_ready_answer_never_weighs_under_10_percent);
    tcase_add_test(t, drain_from_90_percent_until_under_75);
    tcase_add_test(t, exact_at_the_marks_with_a_small_ring);
    tcase_add_test(t, shutting_down_always_drains);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(agent_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
