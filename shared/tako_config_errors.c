/*  tako_config_errors — the problems one configuration load found.

    A load reports every problem it finds, so a user fixes a file in one
    round. The list is capped: a hostile file cannot make us allocate an
    error per byte.                                                        */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tako_config_private.h"

struct tako_config_errors_t {
    tako_config_error_t *entries;
    size_t size;                //  entries kept
    size_t capacity;
    size_t error_count;         //  errors kept, warnings not counted
    size_t dropped;             //  entries beyond TAKO_CONFIG_ERRORS_MAX
};

char *
tako_config_format (const char *format, ...)
{
    va_list args;
    va_start (args, format);
    char *text = NULL;
    if (vasprintf (&text, format, args) < 0)
        text = NULL;
    va_end (args);
    return text;
}

tako_config_errors_t *
tako_config_errors_new (void)
{
    return calloc (1, sizeof (tako_config_errors_t));
}

void
tako_config_errors_destroy (tako_config_errors_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    tako_config_errors_t *self = *self_p;
    for (size_t i = 0; i < self->size; i++) {
        free (self->entries [i].file);
        free (self->entries [i].option);
        free (self->entries [i].message);
    }
    free (self->entries);
    free (self);
    *self_p = NULL;
}

size_t
tako_config_errors_count (tako_config_errors_t *self)
{
    return self? self->error_count + (self->dropped? 1: 0): 0;
}

size_t
tako_config_errors_size (tako_config_errors_t *self)
{
    return self? self->size: 0;
}

const tako_config_error_t *
tako_config_errors_get (tako_config_errors_t *self, size_t index)
{
    return self && index < self->size? &self->entries [index]: NULL;
}

static int
errors_grow (tako_config_errors_t *self)
{
    if (self->size < self->capacity)
        return 0;
    size_t capacity = self->capacity? self->capacity * 2: 8;
    tako_config_error_t *entries = realloc (self->entries, capacity * sizeof *entries);
    if (!entries)
        return -1;
    self->entries = entries;
    self->capacity = capacity;
    return 0;
}

void
tako_config_errors_add (tako_config_errors_t *self, bool warning, const char *file,
                        int line, const char *option, const char *format, ...)
{
    if (!self)
        return;
    if (self->size >= TAKO_CONFIG_ERRORS_MAX || errors_grow (self)) {
        if (!warning)
            self->dropped++;
        return;
    }
    va_list args;
    va_start (args, format);
    char *message = NULL;
    if (vasprintf (&message, format, args) < 0)
        message = NULL;
    va_end (args);

    tako_config_error_t *entry = &self->entries [self->size++];
    entry->file = file? strdup (file): NULL;
    entry->line = line;
    entry->option = option? strdup (option): NULL;
    entry->message = message? message: strdup ("out of memory");
    entry->warning = warning;
    if (!warning)
        self->error_count++;
}

//  Append "file:line: option: message\n" for one entry to a stream.
static void
error_print (FILE *out, const tako_config_error_t *entry)
{
    if (entry->warning)
        fputs ("warning: ", out);
    if (entry->file && entry->line > 0)
        fprintf (out, "%s:%d: ", entry->file, entry->line);
    else
    if (entry->file)
        fprintf (out, "%s: ", entry->file);
    if (entry->option)
        fprintf (out, "%s: ", entry->option);
    fprintf (out, "%s\n", entry->message);
}

char *
tako_config_errors_text (tako_config_errors_t *self, bool include_warnings)
{
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream (&text, &size);
    if (!out)
        return NULL;
    for (size_t i = 0; self && i < self->size; i++)
        if (include_warnings || !self->entries [i].warning)
            error_print (out, &self->entries [i]);
    if (self && self->dropped)
        fprintf (out, "... and %zu more errors\n", self->dropped);
    fclose (out);
    return text;
}
