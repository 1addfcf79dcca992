/*  tako_breaker — a circuit breaker over executor and sandbox failures.

    closed     jobs flow; consecutive infrastructure failures are counted.
    open       after failure_threshold consecutive failures: the scheduler
               stops dispatching and /health reports degraded, for
               open_ms milliseconds.
    half_open  after that pause one probe job is let through: its success
               closes the breaker, its failure opens it again.

    Time is passed in (milliseconds, any monotonic clock) so the class is
    deterministic and testable.

        tako_breaker_t *breaker = tako_breaker_new (5, 30000);
        if (tako_breaker_allows (breaker, now_ms))
            dispatch ...
        tako_breaker_record_failure (breaker, now_ms, "sandbox setup failed");
*/

#ifndef TAKO_BREAKER_H_INCLUDED
#define TAKO_BREAKER_H_INCLUDED

#include <stdbool.h>
#include <stdint.h>
#include <jansson.h>

typedef enum {
    TAKO_BREAKER_CLOSED,
    TAKO_BREAKER_OPEN,
    TAKO_BREAKER_HALF_OPEN
} tako_breaker_state_t;

typedef struct _tako_breaker_t tako_breaker_t;

//  Open after failure_threshold consecutive failures (>= 1), for open_ms.
tako_breaker_t *tako_breaker_new (int failure_threshold, int64_t open_ms);
void tako_breaker_destroy (tako_breaker_t **self_p);

//  May a job be dispatched now? Moves open → half_open when the pause is
//  over; in half_open, allows a single probe until its outcome is known.
bool tako_breaker_allows (tako_breaker_t *self, int64_t now_ms);

void tako_breaker_record_success (tako_breaker_t *self, int64_t now_ms);
void tako_breaker_record_failure (tako_breaker_t *self, int64_t now_ms, const char *reason);

//  The state as of now_ms (an open breaker whose pause is over reads half_open).
tako_breaker_state_t tako_breaker_state (tako_breaker_t *self, int64_t now_ms);
const char *tako_breaker_state_name (tako_breaker_state_t state);

//  {state, failure_count, success_count, last_failure} as in GET /health;
//  last_failure is the reason of the latest failure, or null.
json_t *tako_breaker_to_json (tako_breaker_t *self, int64_t now_ms);

void tako_breaker_test (bool verbose);

#endif
