/*  tako_breaker — circuit breaker: closed / open / half_open.  */

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_breaker.h"

//  Reasons are for operators; keep them short.
#define BREAKER_REASON_MAX 200

struct _tako_breaker_t {
    int failure_threshold;
    int64_t open_ms;
    tako_breaker_state_t state;
    int64_t opened_at;          //  when it last opened
    bool probe_in_flight;       //  half_open: the one probe was let through
    int consecutive_failures;
    int64_t failure_count;      //  totals since start, for /health
    int64_t success_count;
    char last_failure [BREAKER_REASON_MAX + 1];
};

tako_breaker_t *
tako_breaker_new (int failure_threshold, int64_t open_ms)
{
    if (failure_threshold < 1 || open_ms < 0)
        return NULL;
    tako_breaker_t *self = calloc (1, sizeof (tako_breaker_t));
    if (!self)
        return NULL;
    self->failure_threshold = failure_threshold;
    self->open_ms = open_ms;
    self->state = TAKO_BREAKER_CLOSED;
    return self;
}

void
tako_breaker_destroy (tako_breaker_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

//  An open breaker becomes half_open once its pause is over.
static void
breaker_advance (tako_breaker_t *self, int64_t now_ms)
{
    if (self->state == TAKO_BREAKER_OPEN && now_ms - self->opened_at >= self->open_ms) {
        self->state = TAKO_BREAKER_HALF_OPEN;
        self->probe_in_flight = false;
    }
}

static void
breaker_open (tako_breaker_t *self, int64_t now_ms)
{
    self->state = TAKO_BREAKER_OPEN;
    self->opened_at = now_ms;
    self->probe_in_flight = false;
}

bool
tako_breaker_allows (tako_breaker_t *self, int64_t now_ms)
{
    breaker_advance (self, now_ms);
    switch (self->state) {
        case TAKO_BREAKER_CLOSED:
            return true;
        case TAKO_BREAKER_HALF_OPEN:
            if (self->probe_in_flight)
                return false;
            self->probe_in_flight = true;
            return true;
        case TAKO_BREAKER_OPEN:
        default:
            return false;
    }
}

void
tako_breaker_record_success (tako_breaker_t *self, int64_t now_ms)
{
    breaker_advance (self, now_ms);
    self->success_count++;
    self->consecutive_failures = 0;
    if (self->state == TAKO_BREAKER_HALF_OPEN)
        self->state = TAKO_BREAKER_CLOSED;
    self->probe_in_flight = false;
}

void
tako_breaker_record_failure (tako_breaker_t *self, int64_t now_ms, const char *reason)
{
    breaker_advance (self, now_ms);
    self->failure_count++;
    self->consecutive_failures++;
    snprintf (self->last_failure, sizeof self->last_failure, "%s", reason? reason: "failure");
    if (self->state == TAKO_BREAKER_HALF_OPEN
    ||  (self->state == TAKO_BREAKER_CLOSED
         && self->consecutive_failures >= self->failure_threshold))
        breaker_open (self, now_ms);
}

tako_breaker_state_t
tako_breaker_state (tako_breaker_t *self, int64_t now_ms)
{
    breaker_advance (self, now_ms);
    return self->state;
}

const char *
tako_breaker_state_name (tako_breaker_state_t state)
{
    switch (state) {
        case TAKO_BREAKER_CLOSED:    return "closed";
        case TAKO_BREAKER_OPEN:      return "open";
        case TAKO_BREAKER_HALF_OPEN: return "half_open";
    }
    return "unknown";
}

json_t *
tako_breaker_to_json (tako_breaker_t *self, int64_t now_ms)
{
    return json_pack ("{s:s, s:I, s:I, s:o}",
        "state", tako_breaker_state_name (tako_breaker_state (self, now_ms)),
        "failure_count", (json_int_t) self->failure_count,
        "success_count", (json_int_t) self->success_count,
        "last_failure", self->last_failure [0]? json_string (self->last_failure): json_null ());
}

void
tako_breaker_test (bool verbose)
{
    (void) verbose;
    assert (tako_breaker_new (0, 10) == NULL);

    tako_breaker_t *breaker = tako_breaker_new (3, 1000);
    assert (breaker);
    assert (tako_breaker_allows (breaker, 0));

    //  Failures below the threshold keep it closed; a success resets the run.
    tako_breaker_record_failure (breaker, 1, "executor lost");
    tako_breaker_record_failure (breaker, 2, "executor lost");
    tako_breaker_record_success (breaker, 3);
    tako_breaker_record_failure (breaker, 4, "executor lost");
    tako_breaker_record_failure (breaker, 5, "executor lost");
    assert (tako_breaker_state (breaker, 5) == TAKO_BREAKER_CLOSED);

    //  The third consecutive failure opens it; nothing passes for open_ms.
    tako_breaker_record_failure (breaker, 6, "sandbox setup failed");
    assert (tako_breaker_state (breaker, 6) == TAKO_BREAKER_OPEN);
    assert (!tako_breaker_allows (breaker, 500));

    //  After the pause: one probe only.
    assert (tako_breaker_allows (breaker, 1006));
    assert (tako_breaker_state (breaker, 1006) == TAKO_BREAKER_HALF_OPEN);
    assert (!tako_breaker_allows (breaker, 1007));

    //  A failed probe opens it again; a successful one closes it.
    tako_breaker_record_failure (breaker, 1010, "sandbox setup failed");
    assert (tako_breaker_state (breaker, 1010) == TAKO_BREAKER_OPEN);
    assert (tako_breaker_allows (breaker, 2010));
    tako_breaker_record_success (breaker, 2011);
    assert (tako_breaker_state (breaker, 2011) == TAKO_BREAKER_CLOSED);
    assert (tako_breaker_allows (breaker, 2012));

    json_t *json = tako_breaker_to_json (breaker, 2012);
    assert (strcmp (json_string_value (json_object_get (json, "state")), "closed") == 0);
    assert (json_integer_value (json_object_get (json, "failure_count")) == 6);
    assert (json_integer_value (json_object_get (json, "success_count")) == 2);
    assert (strcmp (json_string_value (json_object_get (json, "last_failure")),
                    "sandbox setup failed") == 0);
    json_decref (json);

    tako_breaker_destroy (&breaker);
    tako_breaker_destroy (&breaker);
    assert (breaker == NULL);
}
