#include "cli.h"

int sv__cmd_enqueue(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return sv__usage_error("enqueue", "not implemented yet");
}
