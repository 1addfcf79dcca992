/*  tako_builder — the builder actor: job type environments on request.

    It registers as service "builder" and answers

        BUILD {request_id, job_type, version_tag?, requirements?, force?}
            → BUILT {request_id, job_type, status: "built", digest, job_ref,
                     image_ref: "envs/<digest>", built_at, duration_ms,
                     cached, version_tag?}
            → ERROR 404 unknown job type; 422 "dependency_error: <pip's
              last lines>" or an invalid per-request requirement; 500
              "build_error: ..." when the host could not build; 503 when
              too many builds run already.

        QUERY env.resolve {job_type?, requirements?, job_ref?}
            → REPLY 200 {env_path, job_ref, digest, built, build_ms}
              where built is true when this request had to build (the
              time counts as the job's dep_install_ms) and env_path is
              the host directory to mount read-only and put on sys.path;
            → 404 unknown job type, or a pinned job_ref whose environment
              is gone and is not the job type's current one; 409
              "environment not built: run tako-vm build NAME" when
              production_mode is on and the environment is missing; 422
              as for BUILD.

    A job_ref pins a version: when given, the environment of that digest
    is used if it exists, whatever the job type says now (reruns).

    Builds run in worker threads (one per environment being built; two
    requests for the same environment share one build), so the actor
    keeps answering heartbeats and cached requests meanwhile. Each build
    is published on the event hub (topic "build.<job_ref>.", see
    tako_events.h) as EVENTs of kind build_started, build_progress and
    build_finished, and every successful BUILD registers the version with
    the recorder (QUERY version.register; a recorder that is down does
    not fail the build).

        tako_actor_args_t args = { .config = config };
        zactor_t *builder = zactor_new (tako_builder_actor, &args);
        ...
        zactor_destroy (&builder);          //  running builds are cancelled  */

#ifndef TAKO_BUILDER_H_INCLUDED
#define TAKO_BUILDER_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>
#include "tako_actor.h"

//  Environments being built at once; more gives 503.
#define TAKO_BUILDER_BUILDS_MAX     4
//  Requests waiting for one build.
#define TAKO_BUILDER_WAITERS_MAX    256
//  When a 503 suggests to try again.
#define TAKO_BUILDER_RETRY_AFTER_MS 1000

//  The actor; args is a tako_actor_args_t. Signals its pipe 0 once
//  started, 1 if it could not. Pipe commands: $TERM; "INSTANCE" → its
//  instance id.
void tako_builder_actor (zsock_t *pipe, void *args);

void tako_builder_test (bool verbose);

#endif
