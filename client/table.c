/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Text tables: columns padded to their widest cell, header in bold on a
 * terminal, last column not padded. */

#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "kvmictl.h"

struct Table {
        size_t n_columns, n_rows;
        char **cells;            /* (n_rows + 1) * n_columns, row 0 = headers */
};

Table *table_new(const char *header, ...) {
        _cleanup_free_ Table *t = calloc(1, sizeof *t);
        va_list ap;
        size_t n = 0;

        if (!t)
                return NULL;
        va_start(ap, header);
        for (const char *h = header; h; h = va_arg(ap, const char *))
                n++;
        va_end(ap);
        t->cells = calloc(n, sizeof *t->cells);
        if (!t->cells)
                return NULL;
        t->n_columns = n;
        va_start(ap, header);
        n = 0;
        for (const char *h = header; h; h = va_arg(ap, const char *))
                t->cells[n++] = strdup(h);
        va_end(ap);
        return TAKE_PTR(t);
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < (t->n_rows + 1) * t->n_columns; i++)
                free(t->cells[i]);
        free(t->cells);
        free(t);
        return NULL;
}

int table_add_row(Table *t, ...) {
        char **cells = realloc(t->cells, (t->n_rows + 2) * t->n_columns * sizeof *cells);
        va_list ap;

        if (!cells)
                return -ENOMEM;
        t->cells = cells;
        va_start(ap, t);
        for (size_t i = 0; i < t->n_columns; i++) {
                const char *v = va_arg(ap, const char *);
                cells[(t->n_rows + 1) * t->n_columns + i] = strdup(v ?: "-");
        }
        va_end(ap);
        t->n_rows++;
        return 0;
}

size_t table_rows(const Table *t) {
        return t->n_rows;
}

void table_print(const Table *t, FILE *f, bool legend, const char *noun) {
        _cleanup_free_ size_t *width = calloc(t->n_columns, sizeof *width);
        bool tty = isatty(fileno(f));

        if (!width)
                return;
        for (size_t r = legend ? 0 : 1; r <= t->n_rows; r++)
                for (size_t c = 0; c < t->n_columns; c++)
                        width[c] = MAX(width[c], strlen(t->cells[r * t->n_columns + c] ?: ""));
        for (size_t r = legend ? 0 : 1; r <= t->n_rows; r++) {
                if (r == 0 && tty)
                        fputs("\033[1m", f);
                for (size_t c = 0; c < t->n_columns; c++) {
                        const char *v = t->cells[r * t->n_columns + c] ?: "";
                        if (c + 1 < t->n_columns)
                                fprintf(f, "%-*s ", (int) width[c], v);
                        else
                                fputs(v, f);
                }
                if (r == 0 && tty)
                        fputs("\033[0m", f);
                fputc('\n', f);
        }
        if (legend && noun)
                fprintf(f, "\n%zu %s listed.\n", t->n_rows, noun);
}
