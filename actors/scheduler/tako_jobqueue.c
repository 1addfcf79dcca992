/*  tako_jobqueue — bounded priority FIFO of job ids.

    One FIFO list per priority level present, kept in a list ordered by
    priority (highest first), and a hash from job id to its place, so push,
    pop and remove are O(1) apart from finding the level (few levels).   */

#include <assert.h>
#include <czmq.h>
#include "tako_jobqueue.h"

typedef struct {
    int priority;
    zlistx_t *jobs;             //  of char * job ids, FIFO
} level_t;

typedef struct {
    level_t *level;
    void *handle;               //  the job's node in level->jobs
} place_t;

struct _tako_jobqueue_t {
    size_t max_size;
    zlistx_t *levels;           //  of level_t *, highest priority first
    zhashx_t *places;           //  job id → place_t *
};

static void
level_destroy (level_t **self_p)
{
    if (*self_p) {
        zlistx_destroy (&(*self_p)->jobs);
        free (*self_p);
        *self_p = NULL;
    }
}

static level_t *
level_new (int priority)
{
    level_t *self = calloc (1, sizeof (level_t));
    if (!self)
        return NULL;
    self->priority = priority;
    self->jobs = zlistx_new ();
    if (!self->jobs) {
        free (self);
        return NULL;
    }
    zlistx_set_destructor (self->jobs, (zlistx_destructor_fn *) zstr_free);
    return self;
}

//  Levels sort highest priority first.
static int
level_compare (const void *item1, const void *item2)
{
    int first = ((const level_t *) item1)->priority;
    int second = ((const level_t *) item2)->priority;
    return (second > first) - (second < first);
}

static void
place_destroy (place_t **self_p)
{
    free (*self_p);
    *self_p = NULL;
}

tako_jobqueue_t *
tako_jobqueue_new (size_t max_size)
{
    tako_jobqueue_t *self = calloc (1, sizeof (tako_jobqueue_t));
    if (!self)
        return NULL;
    self->max_size = max_size;
    self->levels = zlistx_new ();
    self->places = zhashx_new ();
    if (!self->levels || !self->places) {
        tako_jobqueue_destroy (&self);
        return NULL;
    }
    zlistx_set_destructor (self->levels, (zlistx_destructor_fn *) level_destroy);
    zlistx_set_comparator (self->levels, (zlistx_comparator_fn *) level_compare);
    zhashx_set_destructor (self->places, (zhashx_destructor_fn *) place_destroy);
    return self;
}

void
tako_jobqueue_destroy (tako_jobqueue_t **self_p)
{
    if (self_p && *self_p) {
        tako_jobqueue_t *self = *self_p;
        zhashx_destroy (&self->places);
        zlistx_destroy (&self->levels);
        free (self);
        *self_p = NULL;
    }
}

//  The level for this priority, created in order if missing.
static level_t *
queue_level (tako_jobqueue_t *self, int priority)
{
    level_t *level = (level_t *) zlistx_first (self->levels);
    while (level && level->priority > priority)
        level = (level_t *) zlistx_next (self->levels);
    if (level && level->priority == priority)
        return level;
    level_t *fresh = level_new (priority);
    if (!fresh)
        return NULL;
    zlistx_insert (self->levels, fresh, true);   //  sorted by level_compare
    return fresh;
}

static tako_jobqueue_status_t
queue_insert (tako_jobqueue_t *self, const char *job_id, int priority, bool at_front)
{
    if (!job_id || !*job_id
    ||  priority < TAKO_JOBQUEUE_PRIORITY_MIN || priority > TAKO_JOBQUEUE_PRIORITY_MAX)
        return TAKO_JOBQUEUE_INVALID;
    if (zhashx_lookup (self->places, job_id))
        return TAKO_JOBQUEUE_DUPLICATE;
    if (!at_front && zhashx_size (self->places) >= self->max_size)
        return TAKO_JOBQUEUE_FULL;
    level_t *level = queue_level (self, priority);
    place_t *place = calloc (1, sizeof (place_t));
    char *copy = strdup (job_id);
    if (!level || !place || !copy) {
        free (place);
        free (copy);
        return TAKO_JOBQUEUE_INVALID;
    }
    place->level = level;
    place->handle = at_front? zlistx_add_start (level->jobs, copy)
                            : zlistx_add_end (level->jobs, copy);
    zhashx_insert (self->places, job_id, place);
    return TAKO_JOBQUEUE_OK;
}

tako_jobqueue_status_t
tako_jobqueue_push (tako_jobqueue_t *self, const char *job_id, int priority)
{
    return queue_insert (self, job_id, priority, false);
}

tako_jobqueue_status_t
tako_jobqueue_push_front (tako_jobqueue_t *self, const char *job_id, int priority)
{
    return queue_insert (self, job_id, priority, true);
}

//  Detach a job's node, drop its level when empty, forget its place.
static char *
queue_take (tako_jobqueue_t *self, const char *job_id)
{
    place_t *place = (place_t *) zhashx_lookup (self->places, job_id);
    if (!place)
        return NULL;
    level_t *level = place->level;
    char *taken = (char *) zlistx_detach (level->jobs, place->handle);
    zhashx_delete (self->places, job_id);
    if (zlistx_size (level->jobs) == 0) {
        void *handle = zlistx_find (self->levels, level);
        zlistx_delete (self->levels, handle);
    }
    return taken;
}

const char *
tako_jobqueue_peek (tako_jobqueue_t *self)
{
    level_t *level = (level_t *) zlistx_first (self->levels);
    return level? (const char *) zlistx_first (level->jobs): NULL;
}

char *
tako_jobqueue_pop (tako_jobqueue_t *self)
{
    const char *next = tako_jobqueue_peek (self);
    if (!next)
        return NULL;
    char *job_id = strdup (next);
    char *taken = queue_take (self, job_id);
    free (taken);
    return job_id;
}

bool
tako_jobqueue_remove (tako_jobqueue_t *self, const char *job_id)
{
    char *taken = job_id? queue_take (self, job_id): NULL;
    free (taken);
    return taken != NULL;
}

long
tako_jobqueue_position (tako_jobqueue_t *self, const char *job_id)
{
    place_t *place = job_id? (place_t *) zhashx_lookup (self->places, job_id): NULL;
    if (!place)
        return -1;
    long ahead = 0;
    for (level_t *level = (level_t *) zlistx_first (self->levels);
         level && level != place->level;
         level = (level_t *) zlistx_next (self->levels))
        ahead += (long) zlistx_size (level->jobs);
    for (const char *id = (const char *) zlistx_first (place->level->jobs);
         id && strcmp (id, job_id) != 0;
         id = (const char *) zlistx_next (place->level->jobs))
        ahead++;
    return ahead;
}

bool
tako_jobqueue_contains (tako_jobqueue_t *self, const char *job_id)
{
    return job_id && zhashx_lookup (self->places, job_id) != NULL;
}

size_t
tako_jobqueue_size (tako_jobqueue_t *self)
{
    return zhashx_size (self->places);
}

size_t
tako_jobqueue_max_size (tako_jobqueue_t *self)
{
    return self->max_size;
}

void
tako_jobqueue_test (bool verbose)
{
    (void) verbose;
    tako_jobqueue_t *queue = tako_jobqueue_new (4);
    assert (queue);
    assert (tako_jobqueue_pop (queue) == NULL);
    assert (tako_jobqueue_push (queue, "", 0) == TAKO_JOBQUEUE_INVALID);
    assert (tako_jobqueue_push (queue, "x", TAKO_JOBQUEUE_PRIORITY_MAX + 1) == TAKO_JOBQUEUE_INVALID);

    //  FIFO within a priority; higher priority first.
    assert (tako_jobqueue_push (queue, "a", 0) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_push (queue, "b", 0) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_push (queue, "urgent", 5) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_push (queue, "later", -5) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_push (queue, "a", 0) == TAKO_JOBQUEUE_DUPLICATE);
    assert (tako_jobqueue_push (queue, "overflow", 0) == TAKO_JOBQUEUE_FULL);
    assert (tako_jobqueue_size (queue) == 4);
    assert (tako_jobqueue_position (queue, "urgent") == 0);
    assert (tako_jobqueue_position (queue, "a") == 1);
    assert (tako_jobqueue_position (queue, "b") == 2);
    assert (tako_jobqueue_position (queue, "later") == 3);
    assert (tako_jobqueue_position (queue, "nope") == -1);

    //  Cancel while queued; positions close up.
    assert (tako_jobqueue_remove (queue, "a"));
    assert (!tako_jobqueue_remove (queue, "a"));
    assert (tako_jobqueue_position (queue, "b") == 1);

    //  A retry goes to the front of its priority even when full.
    assert (tako_jobqueue_push (queue, "c", 0) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_push_front (queue, "retry", 0) == TAKO_JOBQUEUE_OK);
    assert (tako_jobqueue_size (queue) == 5);

    const char *expected [] = { "urgent", "retry", "b", "c", "later" };
    for (size_t i = 0; i < sizeof expected / sizeof expected [0]; i++) {
        char *job_id = tako_jobqueue_pop (queue);
        assert (job_id && strcmp (job_id, expected [i]) == 0);
        free (job_id);
    }
    assert (tako_jobqueue_size (queue) == 0);
    assert (tako_jobqueue_peek (queue) == NULL);

    //  Destroy with jobs still queued frees everything.
    assert (tako_jobqueue_push (queue, "left", 1) == TAKO_JOBQUEUE_OK);
    tako_jobqueue_destroy (&queue);
    tako_jobqueue_destroy (&queue);
    assert (queue == NULL);
}
