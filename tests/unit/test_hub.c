/*  The event hub with real sockets: the welcome, events from two
    publishers, and following one job versus all jobs.                    */

#include <criterion/criterion.h>
#include "brokers/tako_hub.h"
#include "tako_events.h"

#define WAIT_MS 5000                //  every wait here is bounded by this

static tako_msg_t *
job_event (const char *job_id, int64_t seq)
{
    tako_msg_t *event = tako_msg_new ("EVENT");
    tako_msg_set_str (event, "job_id", job_id);
    tako_msg_set_int (event, "seq", seq);
    tako_msg_set_str (event, "status", "running");
    tako_msg_set_str (event, "kind", "started");
    return event;
}

static void
publish (tako_events_t *publisher, const char *job_id, int64_t seq)
{
    tako_msg_t *event = job_event (job_id, seq);
    cr_assert_eq (tako_events_publish (publisher, &event), 0);
}

//  Wait until the subscriber has its welcome (it is connected).
static void
wait_welcome (tako_events_t *subscriber)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    while (!tako_events_welcomed (subscriber) && zclock_mono () < deadline)
        cr_assert_null (tako_events_recv (subscriber, 10));
    cr_assert (tako_events_welcomed (subscriber));
}

//  Subscriptions travel from the hub to each publisher asynchronously:
//  publish a probe on the watched job until the watcher sees one.
static void
wait_route (tako_events_t *publisher, tako_events_t *watcher, const char *job_id)
{
    int64_t deadline = zclock_mono () + WAIT_MS;
    tako_msg_t *probe = NULL;
    while (!probe && zclock_mono () < deadline) {
        publish (publisher, job_id, 0);
        probe = tako_events_recv (watcher, 10);
    }
    cr_assert_not_null (probe, "no event from the publisher reached the watcher");
    tako_msg_destroy (&probe);
    //  Drain other probes still in flight.
    while ((probe = tako_events_recv (watcher, 50)))
        tako_msg_destroy (&probe);
}

Test (hub, welcome_two_publishers_and_job_filter)
{
    tako_hub_args_t args = { "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", NULL, NULL };
    zactor_t *hub = zactor_new (tako_hub_actor, &args);
    char *publish_endpoint, *subscribe_endpoint;
    cr_assert_eq (tako_hub_endpoints (hub, &publish_endpoint, &subscribe_endpoint), 0);

    tako_events_t *one_job = tako_events_new_subscriber (subscribe_endpoint);
    tako_events_t *all_jobs = tako_events_new_subscriber (subscribe_endpoint);
    cr_assert_eq (tako_events_follow_job (one_job, "j1"), 0);
    cr_assert_eq (tako_events_follow_all (all_jobs), 0);
    wait_welcome (one_job);
    wait_welcome (all_jobs);

    tako_events_t *scheduler = tako_events_new_publisher (publish_endpoint);
    tako_events_t *executor = tako_events_new_publisher (publish_endpoint);
    wait_route (scheduler, one_job, "j1");
    wait_route (executor, one_job, "j1");
    tako_msg_t *stale;
    while ((stale = tako_events_recv (all_jobs, 50)))
        tako_msg_destroy (&stale);

    //  j1 from both publishers, j10 (a prefix trap) and j2 from one.
    publish (scheduler, "j1", 1);
    publish (executor, "j1", 2);
    publish (scheduler, "j10", 1);
    publish (executor, "j2", 1);

    //  The one-job watcher sees exactly j1's two events.
    int seen = 0;
    tako_msg_t *event;
    while ((event = tako_events_recv (one_job, 200))) {
        cr_assert_str_eq (tako_msg_str (event, "job_id"), "j1");
        seen++;
        tako_msg_destroy (&event);
    }
    cr_assert_eq (seen, 2);

    //  The all-jobs watcher sees all four.
    seen = 0;
    while (seen < 4 && (event = tako_events_recv (all_jobs, WAIT_MS))) {
        seen++;
        tako_msg_destroy (&event);
    }
    cr_assert_eq (seen, 4);

    tako_hub_stats_t stats;
    cr_assert_eq (tako_hub_stats (hub, &stats), 0);
    cr_assert_geq (stats.events, 4);

    tako_events_destroy (&scheduler);
    tako_events_destroy (&executor);
    tako_events_destroy (&one_job);
    tako_events_destroy (&all_jobs);
    zstr_free (&publish_endpoint);
    zstr_free (&subscribe_endpoint);
    zactor_destroy (&hub);
}
