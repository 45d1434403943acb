#include "cli.h"

int sv__cmd_plugins(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sv__usage_error("plugins", "not implemented yet");
}
