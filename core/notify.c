/*
 * systemd notifications through libsystemd's sd_notify(). The library is loaded only when
 * systemd asked for notifications (NOTIFY_SOCKET is set): outside systemd the daemon does
 * not map libsystemd and its compression and crypto dependencies at all (about 1 MB of
 * resident pages).
 */
#include "notify.h"

#include "config.h"

#if SV_HAVE_SYSTEMD
#include <dlfcn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <systemd/sd-daemon.h>

#include "log.h"

static int (*notify_fn)(int unset_environment, const char *state);
static bool notify_loaded;

static void notify(const char *state)
{
    if (!notify_loaded) {
        notify_loaded = true;
        if (getenv("NOTIFY_SOCKET") == NULL)
            return;
        /* Never closed: it serves until the process exits. */
        void *lib = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (lib == NULL) {
            sv__log_warning("NOTIFY_SOCKET is set but libsystemd cannot be loaded (%s): "
                            "systemd will not hear that the daemon is ready",
                            dlerror());
            return;
        }
        dlerror();
        void *sym = dlsym(lib, "sd_notify");
        if (sym == NULL) {
            sv__log_warning("libsystemd has no sd_notify: %s", dlerror());
            return;
        }
        /* POSIX lets function pointers travel through void *; ISO C needs the copy. The
         * header's prototype keeps the pointer's type honest. */
        __typeof__(&sd_notify) fn;
        memcpy(&fn, &sym, sizeof fn);
        notify_fn = fn;
    }
    if (notify_fn != NULL)
        notify_fn(0, state);
}

void sv__notify_ready(void)
{
    notify("READY=1\nSTATUS=running");
}

void sv__notify_stopping(void)
{
    notify("STOPPING=1\nSTATUS=stopping");
}

void sv__notify_watchdog(void)
{
    notify("WATCHDOG=1");
}
#else
void sv__notify_ready(void) {}

void sv__notify_stopping(void) {}

void sv__notify_watchdog(void) {}
#endif
