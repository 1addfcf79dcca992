/*  tako_log — one line per event on stderr, with level and component.

    Levels follow the configuration's log_level (DEBUG, INFO, WARNING,
    ERROR, CRITICAL). The threshold is process-wide and set once at start
    by main; actors only read it.                                          */

#ifndef TAKO_LOG_H_INCLUDED
#define TAKO_LOG_H_INCLUDED

#include <stdbool.h>

typedef enum {
    TAKO_LOG_DEBUG = 0,
    TAKO_LOG_INFO,
    TAKO_LOG_WARNING,
    TAKO_LOG_ERROR,
    TAKO_LOG_CRITICAL
} tako_log_level_t;

//  Set the threshold; messages below it are dropped.
void tako_log_set_level (tako_log_level_t level);

//  Parse a level name (case-insensitive). Returns 0 and sets *level, or -1.
int tako_log_level_parse (const char *name, tako_log_level_t *level);

//  Name of a level, e.g. "INFO".
const char *tako_log_level_name (tako_log_level_t level);

//  Log one line: "2026-11-22T08:00:00.123Z INFO  component: message".
void tako_log (tako_log_level_t level, const char *component, const char *format, ...)
    __attribute__ ((format (printf, 3, 4)));

#define tako_debug(component, ...)   tako_log (TAKO_LOG_DEBUG, component, __VA_ARGS__)
#define tako_info(component, ...)    tako_log (TAKO_LOG_INFO, component, __VA_ARGS__)
#define tako_warning(component, ...) tako_log (TAKO_LOG_WARNING, component, __VA_ARGS__)
#define tako_error(component, ...)   tako_log (TAKO_LOG_ERROR, component, __VA_ARGS__)

void tako_log_test (bool verbose);

#endif
