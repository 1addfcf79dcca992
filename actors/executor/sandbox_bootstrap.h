/*  sandbox_bootstrap — the Python program the sandbox starts (see .c).

    File descriptors it expects: 0 /dev/null, 1 stdout, 2 stderr, 3 ready
    (write "R"), 4 go (read "G"), 5 error report (JSON {type, message}).   */

#ifndef SANDBOX_BOOTSTRAP_H_INCLUDED
#define SANDBOX_BOOTSTRAP_H_INCLUDED

#define TAKO_SANDBOX_FD_READY 3
#define TAKO_SANDBOX_FD_GO    4
#define TAKO_SANDBOX_FD_ERROR 5

extern const char tako_sandbox_bootstrap_source [];

#endif
