#include "cli.h"

int sv__cmd_run(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sv__usage_error("run", "not implemented yet");
}
