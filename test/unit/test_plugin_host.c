/*
 * Unit tests for the plugin host, against the real test plugins built into the directory
 * given as argv[1] (build/test/plugins).
 *
 * The build directory's modes follow the builder's umask, so the loads of that directory
 * skip the owner and mode checks; those are tested on copies in a temporary directory whose
 * modes this test sets itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "plugin_host.h"

static const char *plugins_dir;
static char unload_log[64];

/* The whole file as a string ("" when it does not exist); free() it. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return strdup("");
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static void check_unload_log(const char *expected, int line)
{
    char *got = slurp(unload_log);
    if (strcmp(got, expected) != 0) {
        fprintf(stderr, "%s:%d: unload log is \"%s\", expected \"%s\"\n", __FILE__, line, got,
                expected);
        check_failures++;
    }
    free(got);
}

static void reset_unload_log(void)
{
    int fd = open(unload_log, O_WRONLY | O_TRUNC | O_CREAT, 0600);
    if (fd >= 0)
        close(fd);
}

static void copy_file(const char *src, const char *dst, mode_t mode)
{
    char *s = NULL;
    size_t len = 0;
    FILE *in = fopen(src, "rb");
    FILE *m = open_memstream(&s, &len);
    char chunk[65536];
    size_t n;
    while (in != NULL && (n = fread(chunk, 1, sizeof chunk, in)) > 0)
        fwrite(chunk, 1, n, m);
    if (in != NULL)
        fclose(in);
    fclose(m);
    FILE *out = fopen(dst, "wb");
    CHECK(out != NULL && len > 0);
    if (out != NULL) {
        fwrite(s, 1, len, out);
        fclose(out);
    }
    free(s);
    CHECK(chmod(dst, mode) == 0);
}

static const sv__plugin_record *record_of(const sv__plugin_host *host, const char *file)
{
    for (size_t i = 0; i < sv__plugin_host_record_count(host); i++) {
        const sv__plugin_record *rec = sv__plugin_host_record_at(host, i);
        const char *slash = strrchr(rec->path, '/');
        if (strcmp(slash != NULL ? slash + 1 : rec->path, file) == 0)
            return rec;
    }
    fprintf(stderr, "no record for %s\n", file);
    return NULL;
}

static size_t count_state(const sv__plugin_host *host, sv__plugin_state state)
{
    size_t n = 0;
    for (size_t i = 0; i < sv__plugin_host_record_count(host); i++)
        if (sv__plugin_host_record_at(host, i)->state == state)
            n++;
    return n;
}

/* Checks that file was refused with a reason containing sub. */
static void check_refused(const sv__plugin_host *host, const char *file, const char *sub)
{
    const sv__plugin_record *rec = record_of(host, file);
    CHECK(rec != NULL);
    if (rec == NULL)
        return;
    CHECK(rec->state == SV__PLUGIN_REFUSED);
    CHECK(rec->plugin == NULL);
    CHECK_CONTAINS(rec->reason, sub);
}

static void check_loaded(const sv__plugin_host *host, const char *file, const char *name)
{
    const sv__plugin_record *rec = record_of(host, file);
    CHECK(rec != NULL);
    if (rec == NULL)
        return;
    CHECK(rec->state == SV__PLUGIN_LOADED);
    CHECK(rec->reason == NULL);
    CHECK(rec->plugin != NULL);
    CHECK(rec->name != NULL && strcmp(rec->name, name) == 0);
    CHECK(rec->version != NULL && strcmp(rec->version, "1.0.0") == 0);
    CHECK(rec->abi_major == SV_ABI_MAJOR && rec->abi_minor == SV_ABI_MINOR);
    CHECK(strcmp(sv__plugin_name(rec->plugin), name) == 0);
}

static void check_type(const sv__plugin_host *host, const char *name, const char *plugin,
                       uint32_t timeout, uint32_t attempts, uint32_t base, uint32_t max,
                       uint32_t concurrency)
{
    const sv__jobtype *t = sv__plugin_host_find_type(host, name);
    CHECK(t != NULL);
    if (t == NULL) {
        fprintf(stderr, "  (job type %s)\n", name);
        return;
    }
    CHECK(strcmp(t->name, name) == 0);
    CHECK(t->handler != NULL);
    CHECK(strcmp(sv__plugin_name(t->plugin), plugin) == 0);
    CHECK(t->timeout_ms == timeout);
    CHECK(t->max_attempts == attempts);
    CHECK(t->backoff_base_ms == base);
    CHECK(t->backoff_max_ms == max);
    CHECK(t->concurrency == concurrency);
}

static sv_status dummy_handler(sv_job *job, void *userdata)
{
    (void)job;
    (void)userdata;
    return SV_OK;
}

static void dummy_unload(void *userdata)
{
    (void)userdata;
}

static void plugin_log(sv_plugin *plugin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv__plugin_logv(plugin, SV_LOG_INFO, fmt, ap);
    va_end(ap);
}

static void test_load_test_plugins(void)
{
    reset_unload_log();
    sv__plugin_host_opts opts = {.skip_security = true};
    sv__plugin_host *host = sv__plugin_host_new(&opts);
    CHECK(sv__plugin_host_load_dir(host, plugins_dir) == 0);
    CHECK(sv__plugin_host_dir_error(host) == NULL);

    CHECK(sv__plugin_host_record_count(host) == 11);
    CHECK(count_state(host, SV__PLUGIN_LOADED) == 3);
    CHECK(count_state(host, SV__PLUGIN_REFUSED) == 8);

    /* Records come in name order. */
    for (size_t i = 1; i < sv__plugin_host_record_count(host); i++)
        CHECK(strcmp(sv__plugin_host_record_at(host, i - 1)->path,
                     sv__plugin_host_record_at(host, i)->path) < 0);
    CHECK(sv__plugin_host_record_at(host, sv__plugin_host_record_count(host)) == NULL);

    check_loaded(host, "testjobs.so", "testjobs");
    check_loaded(host, "crash.so", "crash");
    check_loaded(host, "oldstruct.so", "oldstruct");

    check_refused(host, "wrong_abi.so", "built for SDK 99.0, host speaks 1.0");
    const sv__plugin_record *rec = record_of(host, "wrong_abi.so");
    CHECK(rec != NULL && rec->name == NULL && rec->abi_major == 99 && rec->abi_minor == 0);
    check_refused(host, "newer_minor.so", "built for SDK 1.99, host speaks 1.0");
    rec = record_of(host, "newer_minor.so");
    CHECK(rec != NULL && rec->name != NULL && strcmp(rec->name, "newer_minor") == 0);
    check_refused(host, "no_magic.so", "missing symbol sv_plugin_magic");
    check_refused(host, "no_init.so", "missing symbol sv_plugin_init");
    check_refused(host, "init_error.so", "init failed: Input/output error (-5)");
    check_refused(host, "bad_name.so", "init failed: Invalid argument (-22)");
    check_refused(host, "bad_name.so", "job type 'bad name!' rejected: invalid name");
    check_refused(host, "not_elf.so", "not a loadable shared object: ");
    check_refused(host, "dup_type.so",
                  "plugin dup_type registers job type 'test.crash', "
                  "already registered by plugin crash (");
    check_refused(host, "dup_type.so", "/crash.so)");

    /* Refused plugins' registrations are gone; the first owner keeps a duplicate. */
    CHECK(sv__plugin_host_find_type(host, "test.init_error") == NULL);
    CHECK(sv__plugin_host_find_type(host, "test.dup_unique") == NULL);
    CHECK(sv__plugin_host_find_type(host, "bad name!") == NULL);
    /* oldstruct.so's rejected registrations left nothing behind, and it loaded. */
    CHECK(sv__plugin_host_find_type(host, "ignored bad name") == NULL);
    CHECK(sv__plugin_host_find_type(host, "test.no_handler") == NULL);
    CHECK(sv__plugin_host_find_type(host, "test.tiny_struct") == NULL);
    CHECK(sv__plugin_host_find_type(host, "no.such.type") == NULL);
    CHECK(sv__plugin_host_find_type(host, NULL) == NULL);
    const sv__jobtype *crash = sv__plugin_host_find_type(host, "test.crash");
    CHECK(crash != NULL && crash->plugin == record_of(host, "crash.so")->plugin);

    /* Job types in registration order: crash.so, oldstruct.so, then testjobs.so. */
    static const char *const order[] = {
        "test.crash",  "test.defaults", "test.oldstruct", "test.sleep",
        "test.flaky",  "test.fail",     "test.hang",      "test.echo",
        "test.record", "test.spawn",    "test.progress",  "test.single",
    };
    CHECK(sv__plugin_host_type_count(host) == sizeof order / sizeof order[0]);
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        const sv__jobtype *t = sv__plugin_host_type_at(host, i);
        CHECK(t != NULL && strcmp(t->name, order[i]) == 0);
    }
    CHECK(sv__plugin_host_type_at(host, sizeof order / sizeof order[0]) == NULL);

    /* Zero members get the host's defaults; members past struct_size are not read. */
    check_type(host, "test.sleep", "testjobs", 60000, 25, 10, 100, 0);
    check_type(host, "test.crash", "crash", 60000, 1, 10, 100, 0);
    check_type(host, "test.defaults", "oldstruct", SV__DEFAULT_TIMEOUT_MS, SV__DEFAULT_MAX_ATTEMPTS,
               SV__DEFAULT_BACKOFF_BASE_MS, SV__DEFAULT_BACKOFF_MAX_MS, 0);
    check_type(host, "test.oldstruct", "oldstruct", SV__DEFAULT_TIMEOUT_MS,
               SV__DEFAULT_MAX_ATTEMPTS, SV__DEFAULT_BACKOFF_BASE_MS, SV__DEFAULT_BACKOFF_MAX_MS,
               0);

    /* Registration is for init only. */
    sv_plugin *testjobs = crash->plugin;
    sv_job_type t = {.struct_size = sizeof t, .name = "test.late", .handler = dummy_handler};
    CHECK(sv__plugin_register_job_type(testjobs, &t) == -EPERM);
    CHECK(sv__plugin_register_job_type(NULL, &t) == -EINVAL);
    CHECK(sv__plugin_host_find_type(host, "test.late") == NULL);
    sv__plugin_on_unload(testjobs, dummy_unload, NULL); /* ignored, with a warning */
    sv__plugin_on_unload(NULL, dummy_unload, NULL);

    /* Logging with and without a plugin; the name of no plugin. */
    plugin_log(testjobs, "a line tagged with the plugin %s", "crash");
    plugin_log(NULL, "a line without a plugin");
    CHECK(strcmp(sv__plugin_name(NULL), "?") == 0);

    /* The refused plugins' unload callbacks ran when they were refused. */
    check_unload_log("dup_type\ninit_error\n", __LINE__);
    CHECK(sv__plugin_host_free(host) == NULL);
    /* And the loaded plugin's at free, newest first. */
    check_unload_log("dup_type\ninit_error\ntestjobs:2\ntestjobs:1\n", __LINE__);
    CHECK(sv__plugin_host_free(NULL) == NULL);
}

static void test_strict(void)
{
    reset_unload_log();
    sv__plugin_host_opts opts = {.strict = true, .skip_security = true};
    sv__plugin_host *host = sv__plugin_host_new(&opts);
    CHECK(sv__plugin_host_load_dir(host, plugins_dir) == -EPERM);
    CHECK(sv__plugin_host_type_count(host) == 0);
    CHECK(sv__plugin_host_find_type(host, "test.sleep") == NULL);
    CHECK(sv__plugin_host_record_count(host) == 11);
    CHECK(count_state(host, SV__PLUGIN_LOADED) == 0);
    check_refused(host, "testjobs.so", "another plugin was refused in strict mode");
    check_refused(host, "wrong_abi.so", "built for SDK 99.0, host speaks 1.0");
    /* Everything was unloaded at once, so the callbacks have run already. */
    check_unload_log("dup_type\ninit_error\ntestjobs:2\ntestjobs:1\n", __LINE__);
    CHECK(sv__plugin_host_free(host) == NULL);
    check_unload_log("dup_type\ninit_error\ntestjobs:2\ntestjobs:1\n", __LINE__);
}

static void test_strict_ok(const char *tmp)
{
    char dir[256], src[512], dst[512];
    snprintf(dir, sizeof dir, "%s/strict_ok", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    snprintf(src, sizeof src, "%s/testjobs.so", plugins_dir);
    snprintf(dst, sizeof dst, "%s/testjobs.so", dir);
    copy_file(src, dst, 0755);
    sv__plugin_host_opts opts = {.strict = true};
    sv__plugin_host *host = sv__plugin_host_new(&opts);
    CHECK(sv__plugin_host_load_dir(host, dir) == 0);
    CHECK(count_state(host, SV__PLUGIN_LOADED) == 1);
    CHECK(sv__plugin_host_find_type(host, "test.echo") != NULL);
    sv__plugin_host_free(host);
    unlink(dst);
    rmdir(dir);
}

static void test_bad_dirs(const char *tmp)
{
    sv__plugin_host *host = sv__plugin_host_new(NULL);
    CHECK(sv__plugin_host_load_dir(host, "/nonexistent/plugins") == -ENOENT);
    CHECK_CONTAINS(sv__plugin_host_dir_error(host), "No such file or directory");
    char file[256];
    snprintf(file, sizeof file, "%s/testjobs.so", plugins_dir);
    CHECK(sv__plugin_host_load_dir(host, file) == -ENOTDIR);
    CHECK(sv__plugin_host_load_dir(NULL, plugins_dir) == -EINVAL);
    CHECK(sv__plugin_host_load_dir(host, NULL) == -EINVAL);
    CHECK(sv__plugin_host_record_count(host) == 0);

    /* An empty directory loads nothing, successfully. */
    char empty[256];
    snprintf(empty, sizeof empty, "%s/empty", tmp);
    CHECK(mkdir(empty, 0755) == 0);
    CHECK(sv__plugin_host_load_dir(host, empty) == 0);
    CHECK(sv__plugin_host_dir_error(host) == NULL);
    CHECK(sv__plugin_host_record_count(host) == 0);
    rmdir(empty);
    sv__plugin_host_free(host);
}

static void test_security(const char *tmp)
{
    char dir[256], src[256], path[512], sub[300], subok[300];
    snprintf(dir, sizeof dir, "%s/secure", tmp);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(chmod(dir, 0755) == 0);

    snprintf(src, sizeof src, "%s/testjobs.so", plugins_dir);
    snprintf(path, sizeof path, "%s/a_ok.so", dir);
    copy_file(src, path, 0755);
    snprintf(path, sizeof path, "%s/b_group.so", dir);
    copy_file(src, path, 0775);
    snprintf(path, sizeof path, "%s/c_others.so", dir);
    copy_file(src, path, 0757);
    snprintf(path, sizeof path, "%s/d_both.so", dir);
    copy_file(src, path, 0777);
    bool root = geteuid() == 0;
    snprintf(path, sizeof path, "%s/e_owner.so", dir);
    copy_file(src, path, 0755);
    if (root)
        CHECK(chown(path, 65534, 65534) == 0);

    /* A symlink into a group-writable directory, and one into a safe one. */
    snprintf(sub, sizeof sub, "%s/gw", dir);
    CHECK(mkdir(sub, 0755) == 0 && chmod(sub, 0775) == 0);
    snprintf(path, sizeof path, "%s/target.so", sub);
    copy_file(src, path, 0755);
    snprintf(path, sizeof path, "%s/f_link.so", dir);
    CHECK(symlink("gw/target.so", path) == 0);
    snprintf(subok, sizeof subok, "%s/ok", dir);
    CHECK(mkdir(subok, 0755) == 0 && chmod(subok, 0755) == 0);
    snprintf(src, sizeof src, "%s/oldstruct.so", plugins_dir);
    snprintf(path, sizeof path, "%s/oldstruct.so", subok);
    copy_file(src, path, 0755);
    snprintf(path, sizeof path, "%s/g_link.so", dir);
    CHECK(symlink("ok/oldstruct.so", path) == 0);
    snprintf(path, sizeof path, "%s/h_dangling.so", dir);
    CHECK(symlink("nowhere.so", path) == 0);
    /* Neither a directory named like a plugin nor a hidden file is a candidate. */
    snprintf(path, sizeof path, "%s/i_dir.so", dir);
    CHECK(mkdir(path, 0755) == 0);
    snprintf(path, sizeof path, "%s/.hidden.so", dir);
    copy_file(src, path, 0755);

    sv__plugin_host *host = sv__plugin_host_new(NULL);
    CHECK(sv__plugin_host_load_dir(host, dir) == 0);
    CHECK(sv__plugin_host_record_count(host) == 8);
    check_loaded(host, "a_ok.so", "testjobs");
    check_refused(host, "b_group.so", "file is writable by group (mode 0775)");
    check_refused(host, "c_others.so", "file is writable by others (mode 0757)");
    check_refused(host, "d_both.so", "file is writable by group and others (mode 0777)");
    if (root)
        check_refused(host, "e_owner.so", "file is owned by uid 65534, not by root");
    else
        check_refused(host, "e_owner.so", "already registered by plugin testjobs");
    check_refused(host, "f_link.so",
                  "the directory of the symlink's target is writable by group (mode 0775)");
    check_loaded(host, "g_link.so", "oldstruct");
    check_refused(host, "h_dangling.so", "cannot resolve the symlink: No such file or directory");
    sv__plugin_host_free(host);

    /* A directory writable by others than its owner is refused as a whole. */
    CHECK(chmod(dir, 0775) == 0);
    host = sv__plugin_host_new(NULL);
    CHECK(sv__plugin_host_load_dir(host, dir) == -EACCES);
    CHECK_CONTAINS(sv__plugin_host_dir_error(host), "directory is writable by group (mode 0775)");
    CHECK(sv__plugin_host_record_count(host) == 0);
    sv__plugin_host_free(host);

    /* skip_security (tests, --insecure-plugins) checks neither. */
    sv__plugin_host_opts opts = {.skip_security = true};
    host = sv__plugin_host_new(&opts);
    CHECK(sv__plugin_host_load_dir(host, dir) == 0);
    check_loaded(host, "a_ok.so", "testjobs");
    check_refused(host, "b_group.so", "already registered by plugin testjobs");
    check_loaded(host, "g_link.so", "oldstruct");
    sv__plugin_host_free(host);
    CHECK(chmod(dir, 0755) == 0);

    static const char *const files[] = {"a_ok.so",   "b_group.so",    "c_others.so",
                                        "d_both.so", "e_owner.so",    "f_link.so",
                                        "g_link.so", "h_dangling.so", ".hidden.so"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/target.so", sub);
    unlink(path);
    rmdir(sub);
    snprintf(path, sizeof path, "%s/oldstruct.so", subok);
    unlink(path);
    rmdir(subok);
    snprintf(path, sizeof path, "%s/i_dir.so", dir);
    rmdir(path);
    CHECK(rmdir(dir) == 0);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s TEST_PLUGINS_DIR\n", argv[0]);
        return 2;
    }
    plugins_dir = argv[1];
    char tmp[] = "/tmp/sv-test-plugin-host-XXXXXX";
    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(unload_log, sizeof unload_log, "%s/unload.log", tmp);
    setenv("SV_TEST_UNLOAD_LOG", unload_log, 1);

    test_load_test_plugins();
    test_strict();
    test_strict_ok(tmp);
    test_bad_dirs(tmp);
    test_security(tmp);

    unlink(unload_log);
    rmdir(tmp);
    return check_done("test_plugin_host");
}
