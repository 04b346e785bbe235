/* test_log.c — the syslog prefix journald reads, level filtering, escaping,
 * truncation, and whole lines from many threads at once. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

static char path[64];
static int saved_stderr = -1;
static int capture_fd = -1;
static char out[1 << 20];

/* stderr goes to a temporary file for the length of each test. */
static void setup(void)
{
    strcpy(path, "/tmp/test_log.XXXXXX");
    capture_fd = mkstemp(path);
    ck_assert_int_ge(capture_fd, 0);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_ge(fcntl(capture_fd, F_SETFL, O_APPEND), 0);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_ge(dup2(capture_fd, STDERR_FILENO), 0);
    log_set_level(LOG_LEVEL_INFO);
    log_set_role("%s", "");
}

static void teardown(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    close(capture_fd);
}

/* Everything logged since setup. */
static const char *captured(void)
{
    ssize_t n = pread(capture_fd, out, sizeof out - 1, 0);
    ck_assert_int_ge(n, 0);
    out[n] = '\0';
    return out;
}

START_TEST(prefix_is_the_syslog_priority)
{
    log_error("disk %s", "full");
    log_warn("slow client %d", 7);
    log_info("listening on %s", "127.0.0.1:8080");
    ck_assert_str_eq(captured(), "<3>disk full\n"
                                 "<4>slow client 7\n"
                                 "<6>listening on 127.0.0.1:8080\n");
}
END_TEST

START_TEST(levels_below_the_threshold_are_dropped)
{
    log_set_level(LOG_LEVEL_WARN);
    log_debug("d");
    log_info("i");
    log_warn("w");
    log_error("e");
    ck_assert_str_eq(captured(), "<4>w\n<3>e\n");

    log_set_level(LOG_LEVEL_DEBUG);
    log_debug("now %s", "shown");
    ck_assert_str_eq(captured(), "<4>w\n<3>e\n<7>now shown\n");

    log_set_level(LOG_LEVEL_ERROR);
    log_warn("hidden");
    ck_assert(!log_enabled(LOG_LEVEL_WARN));
    ck_assert(log_enabled(LOG_LEVEL_ERROR));
    ck_assert_str_eq(captured(), "<4>w\n<3>e\n<7>now shown\n");
}
END_TEST

START_TEST(invalid_levels_are_ignored)
{
    log_set_level(LOG_LEVEL_WARN);
    log_set_level(5);
    log_set_level(-1);
    log_set_level(42);
    ck_assert_int_eq(atomic_load(&log_max_level), LOG_LEVEL_WARN);
}
END_TEST

static int evaluations;

static int counted(void)
{
    return ++evaluations;
}

START_TEST(disabled_levels_do_not_evaluate_arguments)
{
    log_debug("%d", counted());
    ck_assert_int_eq(evaluations, 0);
    log_info("%d", counted());
    ck_assert_int_eq(evaluations, 1);
    ck_assert_str_eq(captured(), "<6>1\n");
}
END_TEST

START_TEST(role_names_the_process)
{
    log_set_role("cpu-worker %d", 3);
    log_error("handler crashed");
    log_set_role("%s", "");
    log_info("front again");
    ck_assert_str_eq(captured(), "<3>cpu-worker 3: handler crashed\n<6>front again\n");
}
END_TEST

START_TEST(control_characters_cannot_forge_lines)
{
    log_info("bad id %s", "x\n<3>fake\r\t\x7f");
    ck_assert_str_eq(captured(), "<6>bad id x\\x0a<3>fake\\x0d\\x09\\x7f\n");
    log_info("caf\xc3\xa9");
    ck_assert_str_eq(captured() + strlen("<6>bad id x\\x0a<3>fake\\x0d\\x09\\x7f\n"),
                     "<6>caf\xc3\xa9\n");
}
END_TEST

START_TEST(long_messages_are_cut_to_one_line)
{
    static char big[8192];
    memset(big, 'a', sizeof big - 1);
    log_warn("%s", big);
    const char *s = captured();
    size_t len = strlen(s);
    ck_assert_uint_le(len, 1280);
    ck_assert_uint_gt(len, 1000);
    ck_assert_int_eq(strncmp(s, "<4>aaaa", 7), 0);
    ck_assert_str_eq(s + len - 4, "...\n");
    ck_assert_ptr_eq(strchr(s, '\n'), s + len - 1);
}
END_TEST

START_TEST(escapes_near_the_limit_stay_whole)
{
    static char big[2048];
    memset(big, '\n', sizeof big - 1);
    log_warn("%s", big);
    const char *s = captured();
    size_t len = strlen(s);
    ck_assert_uint_le(len, 1280);
    ck_assert_str_eq(s + len - 8, "\\x0a...\n");
    ck_assert_ptr_eq(strchr(s, '\n'), s + len - 1);
}
END_TEST

START_TEST(errno_is_kept)
{
    errno = EPIPE;
    log_error("write failed");
    ck_assert_int_eq(errno, EPIPE);
}
END_TEST

START_TEST(level_names)
{
    ck_assert_int_eq(log_parse_level("error"), LOG_LEVEL_ERROR);
    ck_assert_int_eq(log_parse_level("warn"), LOG_LEVEL_WARN);
    ck_assert_int_eq(log_parse_level("info"), LOG_LEVEL_INFO);
    ck_assert_int_eq(log_parse_level("DEBUG"), LOG_LEVEL_DEBUG);
    ck_assert_int_eq(log_parse_level("verbose"), -1);
    ck_assert_int_eq(log_parse_level(""), -1);
    ck_assert_str_eq(log_level_name(LOG_LEVEL_WARN), "warn");
    ck_assert_ptr_null(log_level_name(5));
    ck_assert_ptr_null(log_level_name(-1));
}
END_TEST

#define THREADS 8
#define LINES   500

static void *log_many(void *arg)
{
    int id = (int)(long)arg;
    for (int i = 0; i < LINES; i++)
        log_info("thread %d line %d %s", id, i,
                 "padding padding padding padding padding padding padding padding");
    return NULL;
}

START_TEST(threads_never_interleave_within_a_line)
{
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, log_many, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        ck_assert_int_eq(pthread_join(t[i], NULL), 0);

    int seen[THREADS] = {0}, lines = 0;
    char *save = NULL;
    for (char *line = strtok_r((char *)captured(), "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int id, n, end = 0;
        int got = sscanf(line, "<6>thread %d line %d padding padding padding padding "
                         "padding padding padding padding%n", &id, &n, &end);
        ck_assert_msg(got == 2 && line[end] == '\0', "torn line: %s", line);
        ck_assert_int_lt(id, THREADS);
        ck_assert_int_eq(n, seen[id]);
        seen[id]++;
        lines++;
    }
    ck_assert_int_eq(lines, THREADS * LINES);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *t = tcase_create("log");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, prefix_is_the_syslog_priority);
    tcase_add_test(t, levels_below_the_threshold_are_dropped);
    tcase_add_test(t, invalid_levels_are_ignored);
    tcase_add_test(t, disabled_levels_do_not_evaluate_arguments);
    tcase_add_test(t, role_names_the_process);
    tcase_add_test(t, control_characters_cannot_forge_lines);
    tcase_add_test(t, long_messages_are_cut_to_one_line);
    tcase_add_test(t, escapes_near_the_limit_stay_whole);
    tcase_add_test(t, errno_is_kept);
    tcase_add_test(t, level_names);
    tcase_add_test(t, threads_never_interleave_within_a_line);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
