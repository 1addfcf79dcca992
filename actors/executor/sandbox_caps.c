/*  sandbox_caps — capability dropping with raw system calls.  */

#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "sandbox_caps.h"

//  Capability numbers stop well below this; prctl says EINVAL past the last.
#define CAPS_NUMBER_LIMIT 64

static int
bounding_set_drop (void)
{
    for (int cap = 0; cap < CAPS_NUMBER_LIMIT; cap++) {
        if (prctl (PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
            break;              //  past the kernel's last capability
        if (prctl (PR_CAPBSET_DROP, cap, 0, 0, 0) != 0)
            return -1;
    }
    return 0;
}

int
tako_sandbox_caps_drop_all (void)
{
    if (bounding_set_drop () != 0)
        return -1;
    if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return -1;
    //  No root magic after exec, and no way to turn that off again.
    unsigned long secure = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED
                         | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
                         | SECBIT_KEEP_CAPS_LOCKED;
    if (prctl (PR_SET_SECUREBITS, secure, 0, 0, 0) != 0)
        return -1;
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data [_LINUX_CAPABILITY_U32S_3] = { { 0, 0, 0 } };
    if (syscall (SYS_capset, &header, data) != 0)
        return -1;
    return 0;
}

bool
tako_sandbox_caps_none_held (void)
{
    struct __user_cap_header_struct header = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data [_LINUX_CAPABILITY_U32S_3];
    if (syscall (SYS_capget, &header, data) != 0)
        return false;
    for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
        if (data [i].effective || data [i].permitted || data [i].inheritable)
            return false;
    for (int cap = 0; cap < CAPS_NUMBER_LIMIT; cap++) {
        int held = prctl (PR_CAPBSET_READ, cap, 0, 0, 0);
        if (held < 0)
            break;
        if (held > 0)
            return false;
    }
    return true;
}
