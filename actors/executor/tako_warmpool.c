/*  tako_warmpool — sandboxes prepared ahead of their jobs. See the header.

    The owner thread keeps the pools; the warmer thread only prepares.
    Between them, on the warmer's pipe:

        owner  -> warmer   "PREPARE" job_type slot     (picture "ssi")
        warmer -> owner    "DONE" slot sandbox         ("sip"; NULL = failed)
        owner  -> warmer   "ZYGOTE" job_type 0         the type's zygote died:
                                                        start another (no answer)
        owner  -> warmer   "STOP"
        warmer -> owner    "STOPPED" -1 NULL           after anything pending

    A sandbox's parent-death signal follows the thread that cloned it: the
    warmer lives as long as the pool, so the pool must outlive the jobs
    running in its sandboxes (the executor destroys its jobs first).      */

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include "tako_warmpool.h"
#include "tako_zygote.h"
#include "tako_jobenv.h"
#include "tako_executor.h"
#include "tako_log.h"

#define LOG "warmpool"

//  Slot states besides a pool index.
#define SLOT_FREE   (-1)

typedef struct {
    tako_sandbox_t *sandbox;
    int slot;                   //  index into the pool's slot table
} warm_t;

typedef struct {
    const tako_config_job_type_t *job_type;     //  borrowed from config
    int target;
    zlist_t *ready;             //  of warm_t *, oldest first
    int preparing;
    int64_t last_take;          //  monotonic ms
    int64_t retry_at;           //  monotonic ms; 0 = may prepare
    uint64_t hits;
    bool announced;             //  "N ready" logged once
    tako_zygote_t *zygote;      //  made and replaced by the warmer, under
                                //  zygote_lock; NULL = sandboxes exec
    int64_t zygote_retry_at;    //  warmer only: after a failed start
    uint64_t zygote_generation; //  +1 per zygote installed (under the lock)
    uint64_t zygote_reported;   //  owner only: the generation it asked to
                                //  replace
} pool_t;

struct _tako_warmpool_t {
    tako_config_t *config;
    int slot_base;
    int slot_count;
    int *slot_state;            //  SLOT_FREE or the owning pool's index
    pool_t *pools;
    size_t pool_count;
    zactor_t *warmer;
    bool zygotes_enabled;
    pthread_mutex_t zygote_lock;
};

//  --------------------------------------------------------------------------
//  The warmer thread

static pool_t *
pool_find (tako_warmpool_t *self, const char *job_type_name)
{
    for (size_t i = 0; job_type_name && i < self->pool_count; i++)
        if (streq (self->pools [i].job_type->name, job_type_name))
            return &self->pools [i];
    return NULL;
}

//  The job type's zygote for sandboxes of spec: the one there is while it
//  lives and was made from the same spec, else a new one. NULL when the
//  type's sandboxes exec their interpreter (no zygote program, a spec a
//  zygote cannot serve, a preload that failed in the zygote).
static tako_zygote_t *
warm_zygote (tako_warmpool_t *self, pool_t *pool, const tako_sandbox_spec_t *spec)
{
    if (!self->zygotes_enabled || !pool || !tako_zygote_usable (spec))
        return NULL;
    tako_zygote_t *zygote = pool->zygote;
    if (zygote && tako_zygote_alive (zygote) && tako_zygote_matches (zygote, spec))
        return zygote;
    if (zygote) {
        pthread_mutex_lock (&self->zygote_lock);
        pool->zygote = NULL;
        pthread_mutex_unlock (&self->zygote_lock);
        tako_zygote_destroy (&zygote);
    }
    if (pool->zygote_retry_at > zclock_mono ())
        return NULL;
    char *error = NULL;
    zygote = tako_zygote_new (spec, &error);
    if (!zygote) {
        tako_warning (LOG, "%s: sandboxes start their own interpreter (no zygote: %s)",
                      pool->job_type->name, error? error: "out of memory");
        free (error);
        pool->zygote_retry_at = zclock_mono () + TAKO_WARMPOOL_RETRY_MS;
        return NULL;
    }
    tako_info (LOG, "%s: zygote %d started: sandboxes fork its interpreter",
               pool->job_type->name, (int) tako_zygote_pid (zygote));
    pthread_mutex_lock (&self->zygote_lock);
    pool->zygote = zygote;
    pool->zygote_generation++;
    pthread_mutex_unlock (&self->zygote_lock);
    return zygote;
}

//  The spec of a warm sandbox of the job type (with its environment,
//  built now if it must be: not in production_mode, where the type stays
//  cold until it is built). 0, or -1 after a warning.
static int
warm_spec (tako_warmpool_t *self, const char *job_type_name, tako_jobenv_t *job_env,
           tako_sandbox_spec_t *spec, tako_sandbox_env_t **env)
{
    tako_config_t *config = self->config;
    const tako_config_job_type_t *job_type = tako_config_job_type (config, job_type_name);
    if (!job_type)
        return -1;
    if (tako_jobenv_resolve (job_env, config, job_type, NULL, 0, NULL,
                             config->max_startup_timeout, NULL) != 0) {
        tako_warning (LOG, "no %s sandbox prepared: %s", job_type_name, job_env->reason);
        return -1;
    }
    if (tako_executor_spec_from_config (spec, config, job_type, env) != 0
    ||  tako_jobenv_apply (job_env, job_type, spec) != 0) {
        tako_warning (LOG, "no %s sandbox prepared: %s", job_type_name,
                      job_env->reason? job_env->reason: "out of memory");
        return -1;
    }
    tako_warmpool_spec_warm (config, job_type, spec);
    return 0;
}

static tako_sandbox_t *
warm_prepare (tako_warmpool_t *self, const char *job_type_name, int slot)
{
    tako_jobenv_t job_env = { 0 };
    tako_sandbox_spec_t spec;
    tako_sandbox_env_t *env = NULL;
    tako_sandbox_t *sandbox = NULL;
    if (warm_spec (self, job_type_name, &job_env, &spec, &env) == 0) {
        spec.slot = slot;
        spec.zygote = warm_zygote (self, pool_find (self, job_type_name), &spec);
        sandbox = tako_sandbox_new (&spec);
        if (sandbox && spec.zygote && tako_sandbox_prepare (sandbox) != 0
        &&  !tako_zygote_alive (spec.zygote)) {
            //  The zygote died: this once without it, a new one next time.
            tako_warning (LOG, "%s: the zygote died (%s)", job_type_name, tako_sandbox_error (sandbox));
            tako_sandbox_destroy (&sandbox);
            spec.zygote = NULL;
            sandbox = tako_sandbox_new (&spec);
        }
        if (sandbox && (tako_sandbox_prepare (sandbox) != 0 || !tako_sandbox_ready (sandbox))) {
            tako_warning (LOG, "cannot prepare a %s sandbox: %s", job_type_name,
                          tako_sandbox_error (sandbox)? tako_sandbox_error (sandbox): "not ready in time");
            tako_sandbox_destroy (&sandbox);
        }
    }
    free (env);
    tako_jobenv_clear (&job_env);
    return sandbox;
}

//  A zygote that died is replaced at once (not only when the next sandbox
//  is prepared): jobs that find no sandbox ready need it.
static void
warm_zygote_replace (tako_warmpool_t *self, const char *job_type_name)
{
    tako_jobenv_t job_env = { 0 };
    tako_sandbox_spec_t spec;
    tako_sandbox_env_t *env = NULL;
    if (warm_spec (self, job_type_name, &job_env, &spec, &env) == 0)
        warm_zygote (self, pool_find (self, job_type_name), &spec);
    free (env);
    tako_jobenv_clear (&job_env);
}

static void
warmer_actor (zsock_t *pipe, void *args)
{
    tako_warmpool_t *self = (tako_warmpool_t *) args;
    zsock_signal (pipe, 0);
    while (true) {
        char *command = NULL, *job_type = NULL;
        int slot = 0;
        if (zsock_recv (pipe, "ssi", &command, &job_type, &slot) != 0 || !command) {
            free (job_type);
            break;
        }
        bool stop = streq (command, "$TERM") || streq (command, "STOP");
        if (streq (command, "PREPARE")) {
            tako_sandbox_t *sandbox = warm_prepare (self, job_type, slot);
            zsock_send (pipe, "sip", "DONE", slot, sandbox);
        }
        else
        if (streq (command, "ZYGOTE"))
            warm_zygote_replace (self, job_type);
        else
        if (streq (command, "STOP"))
            zsock_send (pipe, "sip", "STOPPED", -1, NULL);
        free (command);
        free (job_type);
        if (stop)
            break;
    }
    //  The zygotes were started by this thread (their parent-death signal
    //  follows it): they end with it.
    for (size_t i = 0; i < self->pool_count; i++) {
        pthread_mutex_lock (&self->zygote_lock);
        tako_zygote_t *zygote = self->pools [i].zygote;
        self->pools [i].zygote = NULL;
        pthread_mutex_unlock (&self->zygote_lock);
        tako_zygote_destroy (&zygote);
    }
}

//  --------------------------------------------------------------------------
//  Pools

static void
warm_destroy (warm_t **warm_p)
{
    warm_t *warm = *warm_p;
    if (!warm)
        return;
    tako_sandbox_destroy (&warm->sandbox);
    free (warm);
    *warm_p = NULL;
}

static int
slot_find_free (tako_warmpool_t *self)
{
    for (int i = 0; i < self->slot_count; i++)
        if (self->slot_state [i] == SLOT_FREE)
            return i;
    return -1;
}

//  How many sandboxes this pool should hold now.
static int
pool_goal (pool_t *pool, int64_t now)
{
    return now - pool->last_take > TAKO_WARMPOOL_IDLE_MS && pool->target > 1? 1: pool->target;
}

static void
pool_refill (tako_warmpool_t *self, size_t index, int64_t now)
{
    pool_t *pool = &self->pools [index];
    if (pool->retry_at > now)
        return;
    if (zlist_size (pool->ready) > 0 && now - pool->last_take < TAKO_WARMPOOL_REFILL_DELAY_MS)
        return;             //  a job just started: later (see the header)
    while ((int) zlist_size (pool->ready) + pool->preparing < pool_goal (pool, now)) {
        int slot = slot_find_free (self);
        if (slot < 0)
            return;
        if (zsock_send (self->warmer, "ssi", "PREPARE", pool->job_type->name,
                        self->slot_base + slot) != 0)
            return;
        self->slot_state [slot] = (int) index;
        pool->preparing++;
    }
}

static void
pool_shrink (tako_warmpool_t *self, pool_t *pool, int64_t now)
{
    while ((int) zlist_size (pool->ready) > pool_goal (pool, now)) {
        warm_t *warm = (warm_t *) zlist_pop (pool->ready);
        self->slot_state [warm->slot] = SLOT_FREE;
        warm_destroy (&warm);
    }
}

//  --------------------------------------------------------------------------
//  Public

tako_warmpool_t *
tako_warmpool_new (tako_config_t *config, int slot_base, int slot_count)
{
    assert (config);
    tako_warmpool_t *self = calloc (1, sizeof (tako_warmpool_t));
    if (!self)
        return NULL;
    pthread_mutex_init (&self->zygote_lock, NULL);
    self->config = config;
    self->slot_base = slot_base;
    self->slot_count = slot_count > 0? slot_count: 0;
    self->slot_state = calloc ((size_t) self->slot_count + 1, sizeof (int));
    self->pools = calloc (config->job_type_count + 1, sizeof (pool_t));
    if (!self->slot_state || !self->pools) {
        tako_warmpool_destroy (&self);
        return NULL;
    }
    for (int i = 0; i < self->slot_count; i++)
        self->slot_state [i] = SLOT_FREE;
    const char *zygotes = getenv ("TAKO_ZYGOTE");
    self->zygotes_enabled = !zygotes || !streq (zygotes, "off");
    int64_t now = zclock_mono ();
    for (size_t i = 0; config->warm_pools_enabled && i < config->job_type_count; i++) {
        const tako_config_job_type_t *job_type = &config->job_types [i];
        if (job_type->warm_pool <= 0)
            continue;
        pool_t *pool = &self->pools [self->pool_count++];
        pool->job_type = job_type;
        pool->target = job_type->warm_pool;
        pool->last_take = now;
        pool->ready = zlist_new ();
        if (!pool->ready) {
            tako_warmpool_destroy (&self);
            return NULL;
        }
    }
    self->warmer = zactor_new (warmer_actor, self);
    if (!self->warmer) {
        tako_warmpool_destroy (&self);
        return NULL;
    }
    tako_warmpool_tick (self);
    return self;
}

void
tako_warmpool_destroy (tako_warmpool_t **self_p)
{
    tako_warmpool_t *self = *self_p;
    if (!self)
        return;
    if (self->warmer) {
        //  Collect what the warmer still finishes, then let it go.
        if (zsock_send (self->warmer, "ssi", "STOP", "", 0) == 0)
            while (true) {
                char *command = NULL;
                int slot = 0;
                void *sandbox = NULL;
                if (zsock_recv (self->warmer, "sip", &command, &slot, &sandbox) != 0 || !command)
                    break;
                bool stopped = streq (command, "STOPPED");
                free (command);
                tako_sandbox_destroy ((tako_sandbox_t **) &sandbox);
                if (stopped)
                    break;
            }
        zactor_destroy (&self->warmer);
    }
    for (size_t i = 0; self->pools && i < self->pool_count; i++) {
        warm_t *warm;
        while (self->pools [i].ready && (warm = (warm_t *) zlist_pop (self->pools [i].ready)))
            warm_destroy (&warm);
        zlist_destroy (&self->pools [i].ready);
    }
    free (self->pools);
    free (self->slot_state);
    pthread_mutex_destroy (&self->zygote_lock);
    free (self);
    *self_p = NULL;
}

zsock_t *
tako_warmpool_socket (tako_warmpool_t *self)
{
    assert (self);
    return zactor_sock (self->warmer);
}

void
tako_warmpool_handle (tako_warmpool_t *self)
{
    assert (self);
    char *command = NULL;
    int slot = 0;
    void *pointer = NULL;
    if (zsock_recv (self->warmer, "sip", &command, &slot, &pointer) != 0 || !command)
        return;
    tako_sandbox_t *sandbox = (tako_sandbox_t *) pointer;
    int index = slot - self->slot_base;
    bool known = streq (command, "DONE") && index >= 0 && index < self->slot_count
              && self->slot_state [index] >= 0;
    free (command);
    if (!known) {
        tako_sandbox_destroy (&sandbox);
        return;
    }
    pool_t *pool = &self->pools [self->slot_state [index]];
    pool->preparing--;
    warm_t *warm = sandbox? calloc (1, sizeof (warm_t)): NULL;
    if (!warm) {
        tako_sandbox_destroy (&sandbox);
        self->slot_state [index] = SLOT_FREE;
        pool->retry_at = zclock_mono () + TAKO_WARMPOOL_RETRY_MS;
        return;
    }
    warm->sandbox = sandbox;
    warm->slot = index;
    zlist_append (pool->ready, warm);
    if (!pool->announced && (int) zlist_size (pool->ready) >= pool->target) {
        tako_info (LOG, "%s: %d sandboxes ready", pool->job_type->name, pool->target);
        pool->announced = true;
    }
}

//  Ask the warmer to replace a zygote that died (once per dead zygote).
static void
pool_zygote_check (tako_warmpool_t *self, pool_t *pool)
{
    pthread_mutex_lock (&self->zygote_lock);
    uint64_t generation = pool->zygote_generation;
    bool dead = pool->zygote && generation != pool->zygote_reported && !tako_zygote_alive (pool->zygote);
    pthread_mutex_unlock (&self->zygote_lock);
    if (dead && zsock_send (self->warmer, "ssi", "ZYGOTE", pool->job_type->name, 0) == 0)
        pool->zygote_reported = generation;
}

void
tako_warmpool_tick (tako_warmpool_t *self)
{
    assert (self);
    int64_t now = zclock_mono ();
    for (size_t i = 0; i < self->pool_count; i++) {
        pool_shrink (self, &self->pools [i], now);
        pool_refill (self, i, now);
        pool_zygote_check (self, &self->pools [i]);
    }
}

tako_sandbox_t *
tako_warmpool_take (tako_warmpool_t *self, const char *job_type, int *slot)
{
    assert (self);
    for (size_t i = 0; job_type && i < self->pool_count; i++) {
        pool_t *pool = &self->pools [i];
        if (!streq (pool->job_type->name, job_type))
            continue;
        pool->last_take = zclock_mono ();
        warm_t *warm = (warm_t *) zlist_pop (pool->ready);
        tako_sandbox_t *sandbox = NULL;
        if (warm) {
            sandbox = warm->sandbox;
            warm->sandbox = NULL;
            *slot = self->slot_base + warm->slot;
            pool->hits++;
            warm_destroy (&warm);
        }
        pool_refill (self, i, pool->last_take);
        return sandbox;
    }
    return NULL;
}

void
tako_warmpool_spec_warm (tako_config_t *config, const tako_config_job_type_t *job_type,
                         tako_sandbox_spec_t *spec)
{
    spec->timeout_ms = (int64_t) config->max_timeout * 1000;
    spec->startup_timeout_ms = (int64_t) job_type->startup_timeout * 1000;
    spec->preload = (const char *const *) job_type->preload.items;
    spec->preload_count = job_type->preload.count;
}

tako_zygote_t *
tako_warmpool_zygote (tako_warmpool_t *self, const char *job_type)
{
    assert (self);
    pool_t *pool = pool_find (self, job_type);
    tako_zygote_t *zygote = NULL;
    pthread_mutex_lock (&self->zygote_lock);
    if (pool && pool->zygote && tako_zygote_alive (pool->zygote))
        zygote = tako_zygote_share (pool->zygote);
    pthread_mutex_unlock (&self->zygote_lock);
    return zygote;
}

void
tako_warmpool_release (tako_warmpool_t *self, int slot)
{
    assert (self);
    int index = slot - self->slot_base;
    if (index < 0 || index >= self->slot_count)
        return;
    self->slot_state [index] = SLOT_FREE;
    tako_warmpool_tick (self);
}

size_t
tako_warmpool_ready (tako_warmpool_t *self)
{
    assert (self);
    size_t ready = 0;
    for (size_t i = 0; i < self->pool_count; i++)
        ready += zlist_size (self->pools [i].ready);
    return ready;
}

int64_t
tako_warmpool_memory (tako_warmpool_t *self)
{
    assert (self);
    int64_t bytes = 0;
    for (size_t i = 0; i < self->pool_count; i++)
        for (warm_t *warm = (warm_t *) zlist_first (self->pools [i].ready); warm;
             warm = (warm_t *) zlist_next (self->pools [i].ready))
            bytes += tako_sandbox_memory_bytes (warm->sandbox);
    //  The zygotes' pages are the sandboxes' until a sandbox writes them.
    pthread_mutex_lock (&self->zygote_lock);
    for (size_t i = 0; i < self->pool_count; i++)
        if (self->pools [i].zygote)
            bytes += tako_zygote_memory (self->pools [i].zygote);
    pthread_mutex_unlock (&self->zygote_lock);
    return bytes;
}

uint64_t
tako_warmpool_hits (tako_warmpool_t *self)
{
    assert (self);
    uint64_t hits = 0;
    for (size_t i = 0; i < self->pool_count; i++)
        hits += self->pools [i].hits;
    return hits;
}

//  --------------------------------------------------------------------------
//  Self-test: without warm_pool settings the pool holds nothing and
//  prepares nothing (sandboxes themselves are tested by test_warmpool.c).

void
tako_warmpool_test (bool verbose)
{
    (void) verbose;
    tako_config_t *config = tako_config_new ();
    assert (config);
    tako_warmpool_t *pool = tako_warmpool_new (config, 300, 4);
    assert (pool);
    int slot = -1;
    assert (tako_warmpool_take (pool, "default", &slot) == NULL);
    assert (slot == -1);
    assert (tako_warmpool_ready (pool) == 0);
    assert (tako_warmpool_hits (pool) == 0);
    assert (tako_warmpool_memory (pool) == 0);
    tako_warmpool_release (pool, 999);          //  unknown slots are ignored
    tako_warmpool_destroy (&pool);
    assert (pool == NULL);
    tako_warmpool_destroy (&pool);
    tako_config_destroy (&config);
}
