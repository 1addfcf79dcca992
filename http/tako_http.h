/*  tako_http — the HTTP ingress actor: the Tako VM REST API (docs/rest.md).

    Listens on server_host:server_port with libmicrohttpd driven from the
    actor's own poll loop (external epoll, suspend/resume): one thread owns
    the HTTP connections, the broker connection (a client peer) and the
    event subscription, and nothing is locked. A request that needs the
    scheduler, recorder or dlq suspends its connection until the answer or
    a deadline; sync executes and result waits follow the job's events.

        tako_actor_args_t args = { .config = config };
        zactor_t *http = zactor_new (tako_http_actor, &args);
        zstr_send (http, "PORT");  char *port = zstr_recv (http);  ...
        zactor_destroy (&http);      //  resumes every waiting request first

    Pipe commands: $TERM; "PORT" → the port listened on (decimal).       */

#ifndef TAKO_HTTP_H_INCLUDED
#define TAKO_HTTP_H_INCLUDED

#include <czmq.h>
#include <stdbool.h>

void tako_http_actor (zsock_t *pipe, void *args);

void tako_http_test (bool verbose);

#endif
