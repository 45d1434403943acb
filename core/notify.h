/* systemd notifications (Type=notify); no-ops without libsystemd or outside systemd. */
#ifndef SV_CORE_NOTIFY_H
#define SV_CORE_NOTIFY_H

void sv__notify_ready(void);
void sv__notify_stopping(void);
void sv__notify_watchdog(void);

#endif
