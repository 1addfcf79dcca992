/*  sandbox_caps — drop every capability, for good.

    Inside its user namespace the sandbox starts with a full capability
    set (it needs it for mounts). Before any job code runs we empty the
    bounding set, the ambient set, and the effective/permitted/inheritable
    sets, and lock the securebits so an exec can never give them back.
    Only system calls: safe between clone and exec.                        */

#ifndef SANDBOX_CAPS_H_INCLUDED
#define SANDBOX_CAPS_H_INCLUDED

#include <stdbool.h>

//  Drop all capabilities of this process. Returns 0, or -1 with errno.
int tako_sandbox_caps_drop_all (void);

//  True if this process holds no capability in any set (for tests).
bool tako_sandbox_caps_none_held (void);

#endif
