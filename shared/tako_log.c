/*  tako_log — levelled one-line logging to stderr.  */

#include <assert.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include "tako_log.h"

//  The one piece of process-wide state: written by main before actors
//  start, read by every thread, hence atomic.
static atomic_int log_threshold = TAKO_LOG_INFO;

static const char *level_names [] = { "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL" };
#define LEVEL_COUNT (int) (sizeof (level_names) / sizeof (level_names [0]))

void
tako_log_set_level (tako_log_level_t level)
{
    atomic_store (&log_threshold, (int) level);
}

int
tako_log_level_parse (const char *name, tako_log_level_t *level)
{
    for (int i = 0; name && i < LEVEL_COUNT; i++)
        if (strcasecmp (name, level_names [i]) == 0) {
            *level = (tako_log_level_t) i;
            return 0;
        }
    return -1;
}

const char *
tako_log_level_name (tako_log_level_t level)
{
    return (int) level >= 0 && (int) level < LEVEL_COUNT? level_names [level]: "UNKNOWN";
}

void
tako_log (tako_log_level_t level, const char *component, const char *format, ...)
{
    if ((int) level < atomic_load (&log_threshold))
        return;
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    struct tm utc;
    gmtime_r (&now.tv_sec, &utc);
    char stamp [32];
    strftime (stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);

    //  Format into one buffer and write once, so lines from threads
    //  do not interleave.
    char line [2048];
    int used = snprintf (line, sizeof line, "%s.%03ldZ %-7s %s: ", stamp,
                         now.tv_nsec / 1000000, tako_log_level_name (level),
                         component? component: "tako");
    va_list args;
    va_start (args, format);
    if (used > 0 && (size_t) used < sizeof line)
        used += vsnprintf (line + used, sizeof line - used, format, args);
    va_end (args);
    if (used < 0)
        return;
    if ((size_t) used >= sizeof line - 1)
        used = sizeof line - 2;
    line [used++] = '\n';
    fwrite (line, 1, used, stderr);
}

void
tako_log_test (bool verbose)
{
    (void) verbose;
    tako_log_level_t level;
    assert (tako_log_level_parse ("warning", &level) == 0);
    assert (level == TAKO_LOG_WARNING);
    assert (tako_log_level_parse ("CRITICAL", &level) == 0);
    assert (level == TAKO_LOG_CRITICAL);
    assert (tako_log_level_parse ("loud", &level) == -1);
    assert (tako_log_level_parse (NULL, &level) == -1);
    assert (strcmp (tako_log_level_name (TAKO_LOG_INFO), "INFO") == 0);
    //  Below the threshold nothing is written; we only check it does not crash.
    tako_log_set_level (TAKO_LOG_CRITICAL);
    tako_info ("selftest", "dropped %d", 1);
    tako_log_set_level (TAKO_LOG_INFO);
}
