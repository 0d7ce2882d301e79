/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Operator logging: stderr, with "<N>" priority prefixes when stderr is the
 * journal so journald keeps the levels.  Not the audit log. */

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>

#include "kvmid.h"

static int max_level = LOG_LVL_INFO;
static bool journal_prefix;
static bool to_journal;         /* detached: stderr is /dev/null */

static const char *const level_names[] = {
        [LOG_LVL_ERR] = "err",
        [LOG_LVL_WARNING] = "warning",
        [LOG_LVL_NOTICE] = "notice",
        [LOG_LVL_INFO] = "info",
        [LOG_LVL_DEBUG] = "debug",
};

/* JOURNAL_STREAM is "dev:ino" of the stream journald gave us; only trust it
 * if stderr still is that stream (not redirected by a wrapper). */
static bool stderr_is_journal(void) {
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;

        if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return st.st_dev == (dev_t) dev && st.st_ino == (ino_t) ino;
}

void log_setup(int level) {
        max_level = level;
        journal_prefix = stderr_is_journal();
}

void log_to_journal(void) {
        to_journal = true;
}

void log_set_max_level(int level) {
        max_level = level;
}

int log_get_max_level(void) {
        return max_level;
}

int log_level_from_string(const char *s) {
        for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
                if (level_names[i] && strcasecmp(s, level_names[i]) == 0)
                        return (int) i;
        if (strcasecmp(s, "error") == 0)
                return LOG_LVL_ERR;
        if (strcasecmp(s, "warn") == 0)
                return LOG_LVL_WARNING;
        return -EINVAL;
}

const char *log_level_to_string(int level) {
        if (level < 0 || (size_t) level >= ELEMENTSOF(level_names))
                return NULL;
        return level_names[level];
}

int log_internal(int level, int error, const char *file, int line, const char *format, ...) {
        char buf[2048];
        va_list ap;
        int saved = errno;

        error = error < 0 ? -error : error;
        if (level > max_level)
                return -error;

        /* %m means the error passed in, not whatever errno happens to be. */
        errno = error;
        va_start(ap, format);
        vsnprintf(buf, sizeof buf, format, ap);
        va_end(ap);

        if (to_journal)
                (void) sd_journal_print(level, "%s", buf);
        else if (journal_prefix)
                fprintf(stderr, "<%d>%s\n", level, buf);
        else if (max_level >= LOG_LVL_DEBUG)
                fprintf(stderr, "kvmid[%d]: %s: %s (%s:%d)\n", (int) getpid(), level_names[level], buf, file, line);
        else
                fprintf(stderr, "kvmid[%d]: %s: %s\n", (int) getpid(), level_names[level], buf);

        errno = saved;
        return -error;
}
