/*  tako_jobqueue — the scheduler's bounded queue of job ids.

    Highest priority first, first-in first-out within a priority. Bounded
    by max_queue_size: a full queue refuses at once (the caller answers
    "try later", never waits). A job's position is the number of jobs that
    will be dispatched before it.

        tako_jobqueue_t *queue = tako_jobqueue_new (100);
        tako_jobqueue_push (queue, "job-1", 0);
        char *next = tako_jobqueue_pop (queue);     //  "job-1", caller frees
*/

#ifndef TAKO_JOBQUEUE_H_INCLUDED
#define TAKO_JOBQUEUE_H_INCLUDED

#include <stdbool.h>
#include <stddef.h>

#define TAKO_JOBQUEUE_PRIORITY_MIN  -100
#define TAKO_JOBQUEUE_PRIORITY_MAX   100

typedef struct _tako_jobqueue_t tako_jobqueue_t;

typedef enum {
    TAKO_JOBQUEUE_OK = 0,
    TAKO_JOBQUEUE_FULL = -1,        //  max_size reached
    TAKO_JOBQUEUE_DUPLICATE = -2,   //  the job is already queued
    TAKO_JOBQUEUE_INVALID = -3      //  no id, or priority out of range
} tako_jobqueue_status_t;

tako_jobqueue_t *tako_jobqueue_new (size_t max_size);
void tako_jobqueue_destroy (tako_jobqueue_t **self_p);

//  Append a job at the end of its priority.
tako_jobqueue_status_t tako_jobqueue_push (tako_jobqueue_t *self, const char *job_id, int priority);

//  Put a job back at the FRONT of its priority (a retry, or a dispatch
//  that could not be delivered), even if the queue is full: it was
//  already accepted once and must not be lost.
tako_jobqueue_status_t tako_jobqueue_push_front (tako_jobqueue_t *self, const char *job_id, int priority);

//  Remove and return the next job id (caller frees), or NULL when empty.
char *tako_jobqueue_pop (tako_jobqueue_t *self);

//  The next job id without removing it (borrowed), or NULL.
const char *tako_jobqueue_peek (tako_jobqueue_t *self);

//  Remove a job (cancelled while queued). True if it was queued.
bool tako_jobqueue_remove (tako_jobqueue_t *self, const char *job_id);

//  0-based position, or -1 if the job is not queued.
long tako_jobqueue_position (tako_jobqueue_t *self, const char *job_id);

bool tako_jobqueue_contains (tako_jobqueue_t *self, const char *job_id);
size_t tako_jobqueue_size (tako_jobqueue_t *self);
size_t tako_jobqueue_max_size (tako_jobqueue_t *self);

void tako_jobqueue_test (bool verbose);

#endif
