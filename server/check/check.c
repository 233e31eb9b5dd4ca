#include "check.h"

#include <stdio.h>
#include <stdlib.h>

_Noreturn void check_failed(const char *what, const char *file, int line)
{
    fprintf(stderr, "check failed: %s (%s:%d)\n", what, file, line);
    fflush(stderr);
    abort();
}
