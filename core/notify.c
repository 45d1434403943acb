#include "notify.h"

#include "config.h"

#if SV_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

void sv__notify_ready(void)
{
    sd_notify(0, "READY=1\nSTATUS=running");
}

void sv__notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void sv__notify_watchdog(void)
{
    sd_notify(0, "WATCHDOG=1");
}
#else
void sv__notify_ready(void) {}

void sv__notify_stopping(void) {}

void sv__notify_watchdog(void) {}
#endif
