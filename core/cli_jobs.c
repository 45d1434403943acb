#include "cli.h"

int sv__cmd_jobs(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sv__usage_error("jobs", "not implemented yet");
}
