/*  The executor actor's conversation, over a real broker, with real
    sandboxes. The test plays the scheduler: it registers as service
    "scheduler", dispatches jobs, and checks what comes back.            */

#include <criterion/criterion.h>
#include <czmq.h>
#include "tako_broker.h"
#include "tako_config.h"
#include "tako_executor.h"
#include "tako_msg.h"
#include "tako_peer.h"

#define BEAT_MS         100
#define WAIT_MS         15000
#define EXECUTOR_SLOTS  2
#define SLOT_BASE       400

static tako_config_t *config;
static zactor_t *broker;
static zactor_t *executor;
static tako_peer_t *scheduler;
static char *endpoint;

//  The next message with this command, skipping others (READY, beats...).
static tako_msg_t *
expect (const char *command, int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (zclock_mono () < deadline) {
        tako_msg_t *msg = tako_peer_recv (scheduler, (int) (deadline - zclock_mono ()));
        if (!msg)
            break;
        if (streq (tako_msg_command (msg), command))
            return msg;
        tako_msg_destroy (&msg);
    }
    cr_assert_fail ("no %s within %d ms", command, timeout_ms);
    return NULL;
}

static void
setup (void)
{
    config = tako_config_new ();
    cr_assert_not_null (config);
    tako_broker_args_t broker_args = { "tcp://127.0.0.1:*", BEAT_MS, 3, NULL };
    broker = zactor_new (tako_broker_actor, &broker_args);
    endpoint = tako_broker_endpoint (broker);
    cr_assert_not_null (endpoint);
    tako_heartbeat_t beat = { BEAT_MS, 3 };
    scheduler = tako_peer_new (endpoint, "scheduler", &beat);
    cr_assert_not_null (scheduler);
    static tako_executor_args_t args;
    args = (tako_executor_args_t) {
        .config = config, .endpoint = endpoint, .heartbeat = beat,
        .slots = EXECUTOR_SLOTS, .slot_base = SLOT_BASE
    };
    executor = zactor_new (tako_executor_actor, &args);
    cr_assert_not_null (executor);
    tako_msg_t *ready = expect ("READY", WAIT_MS);
    cr_assert_eq (tako_msg_int (ready, "slots", -1), EXECUTOR_SLOTS);
    tako_msg_destroy (&ready);
}

static void
teardown (void)
{
    zactor_destroy (&executor);
    tako_peer_destroy (&scheduler);
    zactor_destroy (&broker);
    zstr_free (&endpoint);
    tako_config_destroy (&config);
}

static void
dispatch (const char *job_id, const char *code, int timeout_s, int lease_ms)
{
    tako_msg_t *msg = tako_msg_new ("DISPATCH");
    tako_msg_set_address (msg, "executor");
    tako_msg_set_str (msg, "job_id", job_id);
    tako_msg_set_int (msg, "attempt", 1);
    tako_msg_set_str (msg, "lease_id", "lease-1");
    tako_msg_set_int (msg, "lease_ms", lease_ms);
    tako_msg_set_str (msg, "code", code);
    json_t *input = json_pack ("{s:i}", "n", 41);
    tako_msg_set_object (msg, "input_data", input);
    json_decref (input);
    tako_msg_set_int (msg, "timeout", timeout_s);
    tako_msg_set_int (msg, "startup_timeout", 30);
    tako_msg_set_str (msg, "job_type", "default");
    cr_assert_eq (tako_peer_send (scheduler, &msg), 0);
}

static void
acknowledge (tako_msg_t *result)
{
    tako_msg_t *ack = tako_msg_new ("RESULT_ACK");
    cr_assert_not_null (ack);
    tako_msg_set_address (ack, tako_msg_address (result));
    tako_msg_set_str (ack, "job_id", tako_msg_str (result, "job_id"));
    tako_msg_set_int (ack, "attempt", tako_msg_int (result, "attempt", 0));
    cr_assert_eq (tako_peer_send (scheduler, &ack), 0);
}

//  Executor counters: running jobs, free slots, unacknowledged results.
static void
executor_stats (int *running, int *free_slots, int *pending)
{
    zstr_send (executor, "STATS");
    zsock_recv (executor, "iii", running, free_slots, pending);
}

TestSuite (executor, .init = setup, .fini = teardown, .timeout = 60);

Test (executor, runs_a_dispatched_job_and_reports_every_field)
{
    dispatch ("job-1", "import json\n"
              "n = json.load(open('/input/data.json'))['n']\n"
              "print(n + 1)\n"
              "open('/output/result.json','w').write(json.dumps({'answer': n + 1}))\n"
              "open('/output/notes.txt','w').write('hello')\n", 10, 3000);
    tako_msg_t *accept = expect ("ACCEPT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (accept, "job_id"), "job-1");
    cr_assert_str_eq (tako_msg_str (accept, "lease_id"), "lease-1");
    tako_msg_destroy (&accept);

    //  The artifact's bytes come before the RESULT.
    tako_msg_t *artifact = expect ("ARTIFACT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (artifact, "name"), "notes.txt");
    size_t size = 0;
    const void *data = tako_msg_bin (artifact, "data", &size);
    cr_assert_eq (size, 5);
    cr_assert (memcmp (data, "hello", 5) == 0);
    tako_msg_destroy (&artifact);

    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (result, "status"), "succeeded");
    cr_assert_str_eq (tako_msg_str (result, "stdout"), "42\n");
    cr_assert_eq (tako_msg_int (result, "exit_code", -1), 0);
    json_t *output = tako_msg_object (result, "output");
    cr_assert_eq (json_integer_value (json_object_get (output, "answer")), 42);
    cr_assert_not_null (tako_msg_object (result, "timing"));
    cr_assert_not_null (tako_msg_object (result, "resource_usage"));
    cr_assert_eq (strlen (tako_msg_str (result, "code_hash")), 64);
    cr_assert_not_null (tako_msg_str (result, "started_at"));
    cr_assert_str_eq (tako_msg_str (result, "job_type"), "default");
    acknowledge (result);
    tako_msg_destroy (&result);

    //  Acknowledged: nothing pending, the slot is free again.
    int running = -1, free_slots = -1, pending = -1;
    int64_t deadline = zclock_mono () + WAIT_MS;
    do
        executor_stats (&running, &free_slots, &pending);
    while ((pending || running) && zclock_mono () < deadline);
    cr_assert_eq (pending, 0);
    cr_assert_eq (running, 0);
    cr_assert_eq (free_slots, EXECUTOR_SLOTS);
}

Test (executor, resends_a_result_until_acknowledged)
{
    dispatch ("job-resend", "print('once')", 10, 3000);
    tako_msg_t *first = expect ("RESULT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (first, "stdout"), "once\n");
    tako_msg_destroy (&first);
    //  Not acknowledged: the same result comes again.
    tako_msg_t *again = expect ("RESULT", TAKO_EXECUTOR_RESEND_MS * 3);
    cr_assert_str_eq (tako_msg_str (again, "job_id"), "job-resend");
    cr_assert_str_eq (tako_msg_str (again, "stdout"), "once\n");
    acknowledge (again);
    tako_msg_destroy (&again);
}

Test (executor, renews_the_lease_while_a_job_runs)
{
    dispatch ("job-beat", "import time\ntime.sleep(1.5)\n", 10, 600);
    tako_msg_t *beat = expect ("JOB_HEARTBEAT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (beat, "job_id"), "job-beat");
    cr_assert_str_eq (tako_msg_str (beat, "lease_id"), "lease-1");
    tako_msg_destroy (&beat);
    beat = expect ("JOB_HEARTBEAT", 1000);
    tako_msg_destroy (&beat);
    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (result, "status"), "succeeded");
    acknowledge (result);
    tako_msg_destroy (&result);
}

Test (executor, cancel_kills_a_running_job_within_a_second)
{
    dispatch ("job-spin", "while True:\n    pass\n", 30, 3000);
    tako_msg_t *accept = expect ("ACCEPT", WAIT_MS);
    tako_msg_destroy (&accept);
    //  Let the interpreter start spinning before cancelling.
    tako_msg_t *beat = expect ("JOB_HEARTBEAT", WAIT_MS);
    tako_msg_destroy (&beat);

    tako_msg_t *cancel = tako_msg_new ("CANCEL");
    tako_msg_set_address (cancel, "executor");
    tako_msg_set_str (cancel, "job_id", "job-spin");
    tako_msg_set_str (cancel, "request_id", "cancel-1");
    int64_t cancelled_at = zclock_mono ();
    cr_assert_eq (tako_peer_send (scheduler, &cancel), 0);

    tako_msg_t *reply = expect ("REPLY", WAIT_MS);
    cr_assert_eq (tako_msg_int (reply, "code", 0), 200);
    tako_msg_destroy (&reply);
    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    int64_t took = zclock_mono () - cancelled_at;
    cr_assert_str_eq (tako_msg_str (result, "status"), "cancelled");
    cr_assert_lt (took, 1000, "cancel took %lld ms", (long long) took);
    acknowledge (result);
    tako_msg_destroy (&result);
}

Test (executor, refuses_a_dispatch_when_every_slot_is_busy)
{
    dispatch ("job-a", "import time\ntime.sleep(3)\n", 10, 3000);
    dispatch ("job-b", "import time\ntime.sleep(3)\n", 10, 3000);
    dispatch ("job-c", "print('c')", 10, 3000);
    tako_msg_t *error = expect ("ERROR", WAIT_MS);
    cr_assert_eq (tako_msg_int (error, "code", 0), 503);
    cr_assert_str_eq (tako_msg_str (error, "job_id"), "job-c");
    tako_msg_destroy (&error);
}

Test (executor, a_repeated_dispatch_runs_the_job_once)
{
    dispatch ("job-twice", "print('ran')", 10, 3000);
    dispatch ("job-twice", "print('ran')", 10, 3000);
    tako_msg_t *accept = expect ("ACCEPT", WAIT_MS);
    tako_msg_destroy (&accept);
    accept = expect ("ACCEPT", WAIT_MS);
    tako_msg_destroy (&accept);
    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    acknowledge (result);
    tako_msg_destroy (&result);
    int running = -1, free_slots = -1, pending = -1;
    int64_t deadline = zclock_mono () + WAIT_MS;
    do
        executor_stats (&running, &free_slots, &pending);
    while ((pending || running) && zclock_mono () < deadline);
    cr_assert_eq (running, 0);
    cr_assert_eq (pending, 0);
}

Test (executor, user_code_failure_is_final_not_retryable)
{
    dispatch ("job-fail", "raise ValueError('bad value')", 10, 3000);
    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (result, "status"), "failed");
    cr_assert_eq (tako_msg_bool (result, "retryable", false), false);
    json_t *error = tako_msg_object (result, "error");
    cr_assert_str_eq (json_string_value (json_object_get (error, "type")), "value_error");
    acknowledge (result);
    tako_msg_destroy (&result);
}

Test (executor, an_unknown_job_type_fails_with_config_error)
{
    tako_msg_t *msg = tako_msg_new ("DISPATCH");
    tako_msg_set_address (msg, "executor");
    tako_msg_set_str (msg, "job_id", "job-nojt");
    tako_msg_set_int (msg, "attempt", 1);
    tako_msg_set_str (msg, "lease_id", "l");
    tako_msg_set_int (msg, "lease_ms", 3000);
    tako_msg_set_str (msg, "code", "print(1)");
    json_t *input = json_object ();
    tako_msg_set_object (msg, "input_data", input);
    json_decref (input);
    tako_msg_set_int (msg, "timeout", 5);
    tako_msg_set_int (msg, "startup_timeout", 10);
    tako_msg_set_str (msg, "job_type", "no-such-type");
    cr_assert_eq (tako_peer_send (scheduler, &msg), 0);
    tako_msg_t *result = expect ("RESULT", WAIT_MS);
    cr_assert_str_eq (tako_msg_str (result, "status"), "failed");
    json_t *error = tako_msg_object (result, "error");
    cr_assert_str_eq (json_string_value (json_object_get (error, "type")), "config_error");
    acknowledge (result);
    tako_msg_destroy (&result);
}
