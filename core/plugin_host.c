/*
 * The plugin host: scans a directory for *.so files, checks each one's magic before running
 * any of its code beyond its constructors, runs its init with the host table and keeps the
 * registry of the job types it registered.
 *
 * Everything here runs on the loop thread, at start-up and at shutdown, except
 * sv__plugin_logv() and sv__plugin_name(), which only read what init left behind and so may
 * run on any thread.
 */
#include "plugin_host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "util.h"

/* Longest plugin name, version and description kept from a magic; longer ones are cut. */
#define NAME_MAX_LEN 64
#define VERSION_MAX_LEN 64
#define DESCRIPTION_MAX_LEN 256

typedef struct unload_cb {
    void (*fn)(void *userdata);
    void *userdata;
} unload_cb;

struct sv_plugin {
    sv__plugin_host *host;
    char *path;
    char *name;
    char *version;
    char *description;
    void *dl;
    unload_cb *unload;
    size_t n_unload;
    /* Left by registrations during init and read when init returns. */
    char *rejected;  /* why the first registration refused with -EINVAL was refused */
    char *duplicate; /* why the first registration refused with -EEXIST was refused */
};

/* A record and the strings it points to, which it owns. */
typedef struct record {
    sv__plugin_record pub;
    char *path, *reason, *name, *version, *description;
} record;

struct sv__plugin_host {
    sv__plugin_host_opts opts;
    sv_plugin **plugins; /* loaded, in load order */
    size_t n_plugins;
    /* Pointers, so that a job type's address stays valid while others come and go. */
    sv__jobtype **types;
    size_t n_types;
    record *records;
    size_t n_records;
    sv_plugin *initializing; /* the plugin whose init is running, if any */
    char *dir_error;
};

typedef const sv_plugin_info *(*magic_fn)(void);
typedef int (*init_fn)(sv_plugin *plugin, const sv_host_api *host);

static SV_PRINTF(1, 2) char *strprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s;
    int r = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (r < 0) {
        fputs("supervisor-worker: out of memory\n", stderr);
        abort();
    }
    return s;
}

/*
 * Copies a string that came from a plugin, for logs and listings: control characters become
 * '?' so a plugin cannot forge log lines, and the copy is cut at max bytes (at a UTF-8
 * character boundary) so a runaway pointer cannot flood them. NULL stays NULL.
 */
static char *clean_copy(const char *s, size_t max)
{
    if (s == NULL)
        return NULL;
    size_t n = strnlen(s, max + 1);
    bool cut = n > max;
    if (cut) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    char *p = sv__xcalloc(n + 4, 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        p[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut)
        memcpy(p + n, "...", 4);
    return p;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 1 && dir[0] == '/')
        n = 0;
    return strprintf("%.*s/%s", (int)n, dir, name);
}

/*
 * Why a plugin file or directory must not be trusted, or NULL. Anyone who can write to it
 * can make the daemon run their code, so only root and the daemon's own user may own it and
 * neither group nor others may write to it.
 */
static char *insecure_reason(const struct stat *st, const char *what)
{
    uid_t euid = geteuid();
    if (st->st_uid != 0 && st->st_uid != euid) {
        if (euid == 0)
            return strprintf("%s is owned by uid %u, not by root", what, (unsigned)st->st_uid);
        return strprintf("%s is owned by uid %u, not by root or the daemon's user (uid %u)", what,
                         (unsigned)st->st_uid, (unsigned)euid);
    }
    mode_t w = st->st_mode & (S_IWGRP | S_IWOTH);
    if (w != 0)
        return strprintf("%s is writable by %s (mode %04o)", what,
                         w == (S_IWGRP | S_IWOTH) ? "group and others"
                         : (w & S_IWGRP)          ? "group"
                                                  : "others",
                         (unsigned)(st->st_mode & 07777));
    return NULL;
}

/* ---- Records ---- */

static record *add_record(sv__plugin_host *host, const char *path)
{
    host->records = sv__xrealloc(host->records, (host->n_records + 1) * sizeof *host->records);
    record *rec = &host->records[host->n_records++];
    memset(rec, 0, sizeof *rec);
    rec->path = sv__xstrdup(path);
    rec->pub.path = rec->path;
    rec->pub.state = SV__PLUGIN_REFUSED;
    return rec;
}

static void record_set_reason(record *rec, char *reason)
{
    free(rec->reason);
    rec->reason = reason;
    rec->pub.reason = reason;
}

/* Marks the record refused, taking ownership of reason, and logs the one line about it. */
static void refuse(record *rec, char *reason)
{
    rec->pub.state = SV__PLUGIN_REFUSED;
    rec->pub.plugin = NULL;
    record_set_reason(rec, reason);
    sv__log_warning("refused plugin %s: %s", rec->path, reason);
}

/* Refuses a plugin whose library is open: the reason is built (from the plugin's own
 * memory, possibly) before the library is closed. Returns false for the caller. */
static bool refuse_closing(void *dl, record *rec, char *reason)
{
    dlclose(dl);
    refuse(rec, reason);
    return false;
}

static void record_free(record *rec)
{
    free(rec->path);
    free(rec->reason);
    free(rec->name);
    free(rec->version);
    free(rec->description);
}

/* ---- Job types ---- */

static const sv__jobtype *find_type(const sv__plugin_host *host, const char *name)
{
    for (size_t i = 0; i < host->n_types; i++)
        if (strcmp(host->types[i]->name, name) == 0)
            return host->types[i];
    return NULL;
}

static void remove_types_of(sv__plugin_host *host, const sv_plugin *plugin)
{
    size_t j = 0;
    for (size_t i = 0; i < host->n_types; i++) {
        sv__jobtype *t = host->types[i];
        if (t->plugin == plugin) {
            free(t->name);
            free(t);
        } else {
            host->types[j++] = t;
        }
    }
    host->n_types = j;
}

/* ---- Plugins ---- */

/*
 * Runs the plugin's unload callbacks (newest first), dlcloses it and frees it. Its job types
 * must be gone already, or be freed by the caller without being looked at.
 */
static void plugin_unload(sv_plugin *p)
{
    for (size_t i = p->n_unload; i-- > 0;)
        p->unload[i].fn(p->unload[i].userdata);
    if (p->dl != NULL)
        dlclose(p->dl);
    free(p->unload);
    free(p->path);
    free(p->name);
    free(p->version);
    free(p->description);
    free(p->rejected);
    free(p->duplicate);
    free(p);
}

/* Removes a loaded plugin from the host and unloads it. */
static void plugin_remove(sv__plugin_host *host, sv_plugin *p)
{
    remove_types_of(host, p);
    for (size_t i = 0; i < host->n_plugins; i++) {
        if (host->plugins[i] == p) {
            memmove(&host->plugins[i], &host->plugins[i + 1],
                    (host->n_plugins - i - 1) * sizeof *host->plugins);
            host->n_plugins--;
            break;
        }
    }
    plugin_unload(p);
}

/* Looks a symbol up; dlerror() first, because NULL can be a symbol's legitimate value. */
static void *lookup(void *dl, const char *symbol)
{
    dlerror();
    void *sym = dlsym(dl, symbol);
    if (dlerror() != NULL)
        return NULL;
    return sym;
}

/* dlerror()'s text usually starts with the path, which the log line already names. */
static const char *strip_path(const char *err, const char *path)
{
    size_t n = strlen(path);
    if (strncmp(err, path, n) == 0 && strncmp(err + n, ": ", 2) == 0)
        return err + n + 2;
    return err;
}

static char *init_failure_reason(int r, const char *rejected)
{
    char *base = r < 0 ? strprintf("init failed: %s (%d)", strerror(-r), r)
                       : strprintf("init failed: it returned %d, not 0 or a negative errno", r);
    if (rejected == NULL)
        return base;
    char *s = strprintf("%s; %s", base, rejected);
    free(base);
    return s;
}

static void log_loaded(const sv__plugin_host *host, const sv_plugin *p)
{
    sv__buf types = {0};
    for (size_t i = 0; i < host->n_types; i++) {
        if (host->types[i]->plugin != p)
            continue;
        if (types.len > 0)
            sv__buf_puts(&types, ", ");
        sv__buf_puts(&types, host->types[i]->name);
    }
    sv__log_info("loaded plugin %s: %s %s, job types: %s", p->path, p->name, p->version,
                 types.len > 0 ? types.data : "none");
    sv__buf_free(&types);
    if (p->rejected != NULL)
        sv__log_warning("plugin %s loaded without a job type it tried to register: %s", p->path,
                        p->rejected);
}

/*
 * The checks a file passes before dlopen() runs any of its code. Returns NULL when it may be
 * loaded, a reason when it is refused; sets *skip (and returns NULL) for a file that is not a
 * plugin candidate at all, such as a directory named x.so.
 */
static char *check_file(const sv__plugin_host *host, int dfd, const struct stat *dst,
                        const char *name, const char *path, bool *skip)
{
    struct stat st;
    *skip = false;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return strprintf("cannot stat: %s", strerror(errno));
    if (S_ISLNK(st.st_mode)) {
        /*
         * A symlink is followed, but its target and the directory the target lives in must
         * pass the same checks as the plugin directory and its files.
         */
        char *real = realpath(path, NULL);
        if (real == NULL)
            return strprintf("cannot resolve the symlink: %s", strerror(errno));
        char *reason = NULL;
        if (stat(real, &st) < 0) {
            reason = strprintf("cannot stat %s: %s", real, strerror(errno));
        } else if (!S_ISREG(st.st_mode)) {
            *skip = true;
        } else if (!host->opts.skip_security) {
            char *slash = strrchr(real, '/');
            struct stat rdst;
            if (slash != NULL) {
                *slash = '\0';
                const char *rdir = real[0] != '\0' ? real : "/";
                if (stat(rdir, &rdst) < 0) {
                    reason = strprintf("cannot stat %s: %s", rdir, strerror(errno));
                } else if (rdst.st_dev != dst->st_dev || rdst.st_ino != dst->st_ino) {
                    char *why = insecure_reason(&rdst, "the directory of the symlink's target");
                    if (why != NULL) {
                        reason = strprintf("%s (%s)", why, rdir);
                        free(why);
                    }
                }
            }
            if (reason == NULL)
                reason = insecure_reason(&st, "the symlink's target");
        }
        free(real);
        return reason;
    }
    if (!S_ISREG(st.st_mode)) {
        *skip = true;
        return NULL;
    }
    if (host->opts.skip_security)
        return NULL;
    return insecure_reason(&st, "file");
}

/* Loads one file; returns true when it loaded, false when it was refused (and logged). */
static bool load_file(sv__plugin_host *host, int dfd, const struct stat *dst, const char *dir,
                      const char *name)
{
    char *path = join_path(dir, name);
    bool skip;
    char *reason = check_file(host, dfd, dst, name, path, &skip);
    if (skip) {
        sv__log_debug("skipping %s: not a regular file", path);
        free(path);
        return true;
    }
    record *rec = add_record(host, path);
    free(path);
    path = rec->path;
    if (reason != NULL) {
        refuse(rec, reason);
        return false;
    }

    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (dl == NULL) {
        const char *err = dlerror();
        refuse(rec, strprintf("not a loadable shared object: %s",
                              err != NULL ? strip_path(err, path) : "unknown error"));
        return false;
    }

    /* ISO C has no conversion from void * to a function pointer; POSIX guarantees a copy. */
    void *sym = lookup(dl, SV_PLUGIN_MAGIC_SYMBOL);
    if (sym == NULL) {
        return refuse_closing(
            dl, rec,
            sv__xstrdup("missing symbol " SV_PLUGIN_MAGIC_SYMBOL
                        ": not a supervisor-worker plugin (SV_PLUGIN_DEFINE defines it)"));
    }
    magic_fn magic;
    memcpy(&magic, &sym, sizeof magic);
    const sv_plugin_info *info = magic();
    if (info == NULL) {
        return refuse_closing(dl, rec, sv__xstrdup(SV_PLUGIN_MAGIC_SYMBOL "() returned NULL"));
    }
    /* Only the size and the ABI version can be trusted before the major is known to match. */
    if (info->struct_size < offsetof(sv_plugin_info, abi_minor) + sizeof info->abi_minor) {
        return refuse_closing(dl, rec,
                              strprintf("the plugin description is %u bytes, too small to be one",
                                        info->struct_size));
    }
    rec->pub.abi_major = info->abi_major;
    rec->pub.abi_minor = info->abi_minor;
    if (info->abi_major != SV_ABI_MAJOR) {
        return refuse_closing(
            dl, rec,
            strprintf("built for SDK %u.%u, host speaks %d.%d (the ABI major must match)",
                      rec->pub.abi_major, rec->pub.abi_minor, SV_ABI_MAJOR, SV_ABI_MINOR));
    }
    size_t need = offsetof(sv_plugin_info, description) + sizeof info->description;
    if (info->struct_size < need) {
        return refuse_closing(dl, rec,
                              strprintf("the plugin description is %u bytes, at least %zu expected",
                                        info->struct_size, need));
    }
    rec->name = clean_copy(info->name, NAME_MAX_LEN);
    rec->version = clean_copy(info->version, VERSION_MAX_LEN);
    rec->description = clean_copy(info->description, DESCRIPTION_MAX_LEN);
    rec->pub.name = rec->name;
    rec->pub.version = rec->version;
    rec->pub.description = rec->description;
    if (info->abi_minor > SV_ABI_MINOR) {
        return refuse_closing(
            dl, rec,
            strprintf("built for SDK %u.%u, host speaks %d.%d (the plugin needs a newer host)",
                      rec->pub.abi_major, rec->pub.abi_minor, SV_ABI_MAJOR, SV_ABI_MINOR));
    }
    if (rec->name == NULL || rec->name[0] == '\0') {
        return refuse_closing(dl, rec, sv__xstrdup("the plugin description has no name"));
    }

    sym = lookup(dl, SV_PLUGIN_INIT_SYMBOL);
    if (sym == NULL) {
        return refuse_closing(
            dl, rec,
            sv__xstrdup("missing symbol " SV_PLUGIN_INIT_SYMBOL " (SV_PLUGIN_DEFINE defines it)"));
    }
    init_fn init;
    memcpy(&init, &sym, sizeof init);

    sv_plugin *p = sv__xcalloc(1, sizeof *p);
    p->host = host;
    p->path = sv__xstrdup(path);
    p->name = sv__xstrdup(rec->name);
    p->version = sv__xstrdup(rec->version != NULL ? rec->version : "");
    p->description = sv__xstrdup(rec->description != NULL ? rec->description : "");
    p->dl = dl;
    host->plugins = sv__xrealloc(host->plugins, (host->n_plugins + 1) * sizeof *host->plugins);
    host->plugins[host->n_plugins++] = p;

    host->initializing = p;
    int r = init(p, &sv__host_api);
    host->initializing = NULL;

    /*
     * A duplicate refuses the plugin even when its init ignored -EEXIST: running two
     * plugins' handlers under one name would make a job's fate depend on load order.
     */
    if (p->duplicate != NULL || r != 0) {
        reason =
            p->duplicate != NULL ? sv__xstrdup(p->duplicate) : init_failure_reason(r, p->rejected);
        plugin_remove(host, p);
        refuse(rec, reason);
        return false;
    }
    rec->pub.state = SV__PLUGIN_LOADED;
    rec->pub.plugin = p;
    log_loaded(host, p);
    return true;
}

static int so_filter(const struct dirent *d)
{
    /* Hidden files are editors' and package managers' temporaries, never plugins. */
    size_t n = strlen(d->d_name);
    return d->d_name[0] != '.' && n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

/* Strict mode: a refusal unloads every plugin, and their records say why. */
static void unload_all_strict(sv__plugin_host *host)
{
    for (size_t i = 0; i < host->n_records; i++) {
        record *rec = &host->records[i];
        if (rec->pub.state == SV__PLUGIN_LOADED) {
            rec->pub.state = SV__PLUGIN_REFUSED;
            rec->pub.plugin = NULL;
            record_set_reason(rec,
                              sv__xstrdup("unloaded: another plugin was refused in strict mode"));
        }
    }
    while (host->n_plugins > 0)
        plugin_remove(host, host->plugins[host->n_plugins - 1]);
}

/* ---- Public interface ---- */

sv__plugin_host *sv__plugin_host_new(const sv__plugin_host_opts *opts)
{
    sv__plugin_host *host = sv__xcalloc(1, sizeof *host);
    if (opts != NULL)
        host->opts = *opts;
    return host;
}

int sv__plugin_host_load_dir(sv__plugin_host *host, const char *dir)
{
    if (host == NULL || dir == NULL)
        return -EINVAL;
    free(host->dir_error);
    host->dir_error = NULL;

    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        int r = -errno;
        host->dir_error = sv__xstrdup(strerror(-r));
        return r;
    }
    struct stat dst;
    if (fstat(dfd, &dst) < 0) {
        int r = -errno;
        host->dir_error = sv__xstrdup(strerror(-r));
        close(dfd);
        return r;
    }
    if (!host->opts.skip_security) {
        char *why = insecure_reason(&dst, "directory");
        if (why != NULL) {
            sv__log_warning("refused plugin directory %s: %s", dir, why);
            host->dir_error = why;
            close(dfd);
            return -EACCES;
        }
    }

    struct dirent **names;
    int n = scandirat(dfd, ".", &names, so_filter, alphasort);
    if (n < 0) {
        int r = -errno;
        host->dir_error = sv__xstrdup(strerror(-r));
        close(dfd);
        return r;
    }
    size_t refused = 0;
    for (int i = 0; i < n; i++) {
        if (!load_file(host, dfd, &dst, dir, names[i]->d_name))
            refused++;
        free(names[i]);
    }
    free(names);
    close(dfd);

    if (refused > 0 && host->opts.strict) {
        unload_all_strict(host);
        return -EPERM;
    }
    return 0;
}

const char *sv__plugin_host_dir_error(const sv__plugin_host *host)
{
    return host != NULL ? host->dir_error : NULL;
}

size_t sv__plugin_host_type_count(const sv__plugin_host *host)
{
    return host != NULL ? host->n_types : 0;
}

const sv__jobtype *sv__plugin_host_type_at(const sv__plugin_host *host, size_t i)
{
    return host != NULL && i < host->n_types ? host->types[i] : NULL;
}

const sv__jobtype *sv__plugin_host_find_type(const sv__plugin_host *host, const char *name)
{
    if (host == NULL || name == NULL)
        return NULL;
    return find_type(host, name);
}

size_t sv__plugin_host_record_count(const sv__plugin_host *host)
{
    return host != NULL ? host->n_records : 0;
}

const sv__plugin_record *sv__plugin_host_record_at(const sv__plugin_host *host, size_t i)
{
    return host != NULL && i < host->n_records ? &host->records[i].pub : NULL;
}

const char *sv__plugin_name(const sv_plugin *plugin)
{
    return plugin != NULL ? plugin->name : "?";
}

sv__plugin_host *sv__plugin_host_free(sv__plugin_host *host)
{
    if (host == NULL)
        return NULL;
    /* Newest first, the mirror of loading. */
    while (host->n_plugins > 0)
        plugin_remove(host, host->plugins[host->n_plugins - 1]);
    free(host->plugins);
    for (size_t i = 0; i < host->n_types; i++) {
        free(host->types[i]->name);
        free(host->types[i]);
    }
    free(host->types);
    for (size_t i = 0; i < host->n_records; i++)
        record_free(&host->records[i]);
    free(host->records);
    free(host->dir_error);
    free(host);
    return NULL;
}

/* ---- Host-table entries ---- */

/* Keeps the first rejection of this init for the refusal line; returns -EINVAL. */
static int reject(sv_plugin *plugin, char *why)
{
    if (plugin->rejected == NULL)
        plugin->rejected = why;
    else
        free(why);
    return -EINVAL;
}

int sv__plugin_register_job_type(sv_plugin *plugin, const sv_job_type *type)
{
    if (plugin == NULL)
        return -EINVAL;
    sv__plugin_host *host = plugin->host;
    if (host->initializing != plugin) {
        sv__log_ctx(SV_LOG_WARNING, &(sv__log_context){.plugin = plugin->name},
                    "sv_register_job_type() called outside the plugin's init; ignored");
        return -EPERM;
    }
    if (type == NULL)
        return reject(plugin, sv__xstrdup("job type rejected: the descriptor is NULL"));
    size_t need = offsetof(sv_job_type, handler) + sizeof type->handler;
    if (type->struct_size < need)
        return reject(plugin,
                      strprintf("job type rejected: struct_size %u is too small (at least %zu)",
                                type->struct_size, need));
    if (type->name == NULL || type->name[0] == '\0')
        return reject(plugin, sv__xstrdup("job type rejected: it has no name"));
    if (!sv__job_type_name_valid(type->name)) {
        char *shown = clean_copy(type->name, 140);
        int r = reject(plugin, strprintf("job type '%s' rejected: invalid name (use 1-128 of "
                                         "A-Z a-z 0-9 _ . : -)",
                                         shown));
        free(shown);
        return r;
    }
    if (type->handler == NULL)
        return reject(plugin, strprintf("job type '%s' rejected: no handler", type->name));

    const sv__jobtype *existing = find_type(host, type->name);
    if (existing != NULL) {
        if (plugin->duplicate == NULL) {
            if (existing->plugin == plugin)
                plugin->duplicate =
                    strprintf("plugin %s registers job type '%s' twice", plugin->name, type->name);
            else
                plugin->duplicate = strprintf(
                    "plugin %s registers job type '%s', already registered by plugin %s (%s)",
                    plugin->name, type->name, existing->plugin->name, existing->plugin->path);
        }
        return -EEXIST;
    }

    /* Read only what the plugin's struct has; a plugin built for an older minor is shorter. */
    sv_job_type t;
    memset(&t, 0, sizeof t);
    memcpy(&t, type, type->struct_size < sizeof t ? type->struct_size : sizeof t);

    sv__jobtype *jt = sv__xcalloc(1, sizeof *jt);
    jt->name = sv__xstrdup(t.name);
    jt->handler = t.handler;
    jt->userdata = t.userdata;
    jt->timeout_ms = t.timeout_ms != 0 ? t.timeout_ms : SV__DEFAULT_TIMEOUT_MS;
    jt->max_attempts = t.max_attempts != 0 ? t.max_attempts : SV__DEFAULT_MAX_ATTEMPTS;
    jt->backoff_base_ms = t.backoff_base_ms != 0 ? t.backoff_base_ms : SV__DEFAULT_BACKOFF_BASE_MS;
    jt->backoff_max_ms = t.backoff_max_ms != 0 ? t.backoff_max_ms : SV__DEFAULT_BACKOFF_MAX_MS;
    /* A cap below the first delay would make the backoff shrink; the cap gives way. */
    if (jt->backoff_max_ms < jt->backoff_base_ms)
        jt->backoff_max_ms = jt->backoff_base_ms;
    jt->concurrency = t.concurrency;
    jt->plugin = plugin;
    host->types = sv__xrealloc(host->types, (host->n_types + 1) * sizeof *host->types);
    host->types[host->n_types++] = jt;
    return 0;
}

void sv__plugin_logv(sv_plugin *plugin, int level, const char *fmt, va_list ap)
{
    if (fmt == NULL)
        return;
    if (level < SV_LOG_ERROR)
        level = SV_LOG_ERROR;
    else if (level > SV_LOG_DEBUG)
        level = SV_LOG_DEBUG;
    sv__log_context ctx = {.plugin = plugin != NULL ? plugin->name : NULL};
    sv__log_ctxv(level, &ctx, fmt, ap);
}

void sv__plugin_on_unload(sv_plugin *plugin, void (*fn)(void *), void *userdata)
{
    if (plugin == NULL || fn == NULL)
        return;
    if (plugin->host->initializing != plugin) {
        sv__log_ctx(SV_LOG_WARNING, &(sv__log_context){.plugin = plugin->name},
                    "sv_plugin_on_unload() called outside the plugin's init; ignored");
        return;
    }
    plugin->unload = sv__xrealloc(plugin->unload, (plugin->n_unload + 1) * sizeof *plugin->unload);
    plugin->unload[plugin->n_unload++] = (unload_cb){fn, userdata};
}
