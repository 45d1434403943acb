#include "cli.h"

int sv__cmd_migrate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sv__usage_error("migrate", "not implemented yet");
}
