/* Helpers shared by the test plugins (each .so gets its own copy; nothing is exported). */
#ifndef SV_TEST_PLUGINS_COMMON_H
#define SV_TEST_PLUGINS_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <supervisor/sdk.h>

/* An integer member of the payload, or def when it is missing or not an integer. */
static inline json_int_t payload_int(sv_job *job, const char *key, json_int_t def)
{
    json_t *v = json_object_get(sv_job_payload(job), key);
    return json_is_integer(v) ? json_integer_value(v) : def;
}

/* A string member of the payload, or NULL. Borrowed from the payload. */
static inline const char *payload_str(sv_job *job, const char *key)
{
    return json_string_value(json_object_get(sv_job_payload(job), key));
}

/* Sleeps ms milliseconds in full, whatever signals arrive. */
static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * Appends one line to the file named by $SV_TEST_UNLOAD_LOG, if set, from an unload
 * callback: the unit tests read it to prove that the host runs the callbacks, in reverse
 * order, also for a plugin it refuses after init. The line is heap-allocated at init and
 * freed here, so a callback the host forgot to run shows up as a leak under LeakSanitizer.
 */
static inline void unload_log_cb(void *userdata)
{
    char *line = userdata;
    const char *path = getenv("SV_TEST_UNLOAD_LOG");
    if (path != NULL && path[0] != '\0') {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0) {
            ssize_t n = write(fd, line, strlen(line));
            (void)n;
            close(fd);
        }
    }
    free(line);
}

static inline void unload_log_register(sv_plugin *plugin, const char *what)
{
    size_t n = strlen(what);
    char *line = malloc(n + 2);
    if (line == NULL)
        return;
    memcpy(line, what, n);
    memcpy(line + n, "\n", 2);
    sv_plugin_on_unload(plugin, unload_log_cb, line);
}

#endif
